// The demo shop of `sluice demo`: a products and an orders table, and a writer that keeps
// changing them (prices, stock, new orders, orders moving on).
import pg from 'pg';

const ADJECTIVES = ['Classic', 'Organic', 'Smoked', 'Spicy', 'Golden', 'Roasted', 'Wild', 'Crispy', 'Sweet', 'Dark'];
const NOUNS = ['Coffee', 'Tea', 'Honey', 'Almonds', 'Chocolate'];
const TAGS = ['new', 'bestseller', 'vegan', 'gluten-free', 'fair-trade', 'limited', 'local'];

/**
 * Creates the demo shop (idempotent): products (seeded with 50 rows when empty) and orders.
 */
export async function createDemoSchema(pgUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl });
  await client.connect();
  try {
    await client.query('BEGIN');
    await client.query(`
      CREATE TABLE IF NOT EXISTS products (
        id         bigserial PRIMARY KEY,
        name       text NOT NULL,
        price      numeric(10,2) NOT NULL,
        stock      int NOT NULL,
        tags       text[] NOT NULL DEFAULT '{}',
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await client.query(`
      CREATE TABLE IF NOT EXISTS orders (
        id         bigserial PRIMARY KEY,
        product_id bigint NOT NULL,
        quantity   int NOT NULL,
        status     text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM products');
    if (rows[0]?.n === 0) {
      const names: string[] = [];
      const prices: string[] = [];
      const stocks: number[] = [];
      const tags: string[] = [];
      let i = 0;
      for (const noun of NOUNS) {
        for (const adjective of ADJECTIVES) {
          names.push(`${adjective} ${noun}`);
          prices.push((2 + ((i * 37) % 230) / 10).toFixed(2));
          stocks.push(20 + ((i * 13) % 80));
          // a text[] literal: tags are plain words, no quoting needed
          tags.push(`{${[TAGS[i % TAGS.length], TAGS[(i * 3 + 1) % TAGS.length]].filter((t, k, a) => a.indexOf(t) === k).join(',')}}`);
          i++;
        }
      }
      await client.query(
        `INSERT INTO products (name, price, stock, tags)
         SELECT n, p::numeric, s, t::text[] FROM unnest($1::text[], $2::text[], $3::int[], $4::text[]) AS u(n, p, s, t)`,
        [names, prices, stocks, tags],
      );
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}

export interface DemoWriterOptions {
  /** pause between transactions (default 500 ms) */
  intervalMs?: number;
  /** called when a transaction fails (the writer goes on, reconnecting if needed) */
  onError?: (err: unknown) => void;
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;

/**
 * Every ~500 ms, one small random transaction on the demo shop: a price or stock change, a new
 * order (taking stock), an order moving on (new, paid, shipped), now and then a deleted order.
 */
export function startDemoWriter(pgUrl: string, opts: DemoWriterOptions = {}): { stop(): Promise<void> } {
  const intervalMs = opts.intervalMs ?? 500;
  let client: pg.Client | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let current: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  const step = async (): Promise<void> => {
    if (!client) {
      const c = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 5000 });
      c.on('error', () => {
        // the connection died (server restarting or stopping): reconnect on the next step
        if (client === c) client = undefined;
      });
      await c.connect();
      if (stopped) {
        await c.end().catch(() => {});
        return;
      }
      client = c;
    }
    const c = client;
    const roll = Math.random();
    await c.query('BEGIN');
    try {
      if (roll < 0.3) {
        await c.query(
          `UPDATE products SET price = greatest(0.50, round(price * (0.9 + random() * 0.2)::numeric, 2)), updated_at = now()
           WHERE id = (SELECT id FROM products ORDER BY random() LIMIT 1)`,
        );
      } else if (roll < 0.45) {
        await c.query(
          `UPDATE products SET stock = stock + $1, updated_at = now() WHERE id = (SELECT id FROM products ORDER BY random() LIMIT 1)`,
          [10 + Math.floor(Math.random() * 40)],
        );
      } else if (roll < 0.75) {
        const quantity = 1 + Math.floor(Math.random() * 4);
        const r = await c.query<{ id: string }>(
          `UPDATE products SET stock = stock - $1, updated_at = now()
           WHERE id = (SELECT id FROM products WHERE stock >= $1 ORDER BY random() LIMIT 1) RETURNING id`,
          [quantity],
        );
        const productId = r.rows[0]?.id;
        if (productId !== undefined) {
          await c.query(`INSERT INTO orders (product_id, quantity, status, created_at) VALUES ($1, $2, 'new', now())`, [productId, quantity]);
        }
      } else if (roll < 0.92) {
        await c.query(
          `UPDATE orders SET status = CASE status WHEN 'new' THEN 'paid' ELSE 'shipped' END
           WHERE id = (SELECT id FROM orders WHERE status IN ('new', 'paid') ORDER BY random() LIMIT 1)`,
        );
      } else {
        await c.query(`DELETE FROM orders WHERE id = (SELECT id FROM orders ORDER BY ${pick(['id', 'random()'])} LIMIT 1)`);
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      timer = undefined;
      current = step()
        .catch((err: unknown) => {
          if (stopped) return;
          opts.onError?.(err);
          const c = client;
          client = undefined;
          void c?.end().catch(() => {});
        })
        .finally(() => {
          current = undefined;
          schedule();
        });
    }, intervalMs * (0.5 + Math.random()));
  };
  schedule();

  return {
    stop() {
      return (stopping ??= (async () => {
        stopped = true;
        if (timer) clearTimeout(timer);
        timer = undefined;
        await current;
        const c = client;
        client = undefined;
        await c?.end().catch(() => {});
      })());
    },
  };
}
