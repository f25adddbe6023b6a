import pg from 'pg';
import { parseLsn, type Lsn } from '../core/lsn.js';
import { WATERMARK_PREFIX } from '../core/keyspace.js';
import { pgClientConfig } from './connection-config.js';

/**
 * Writes fences: a transactional `pg_logical_emit_message(true, 'sluice', 'fence:<n>')` in its
 * own transaction. Its commit comes after every commit before it, so once its transaction is
 * applied, so is everything that committed before the fence was written. The session commits
 * synchronously: the fence (and the WAL before it) is flushed at once, so the walsender can send
 * it without waiting for the WAL writer.
 */
export class FenceEmitter {
  private client: pg.Client | null = null;
  private count = 0;

  constructor(private readonly url: string) {}

  /** Writes a fence; resolves with its LSN. */
  async emit(): Promise<Lsn> {
    const client = await this.connect();
    try {
      const r = await client.query<{ lsn: string }>(`select pg_logical_emit_message(true, $1, $2)::text as lsn`, [WATERMARK_PREFIX, `fence:${++this.count}`]);
      return parseLsn(r.rows[0]!.lsn);
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const c = new pg.Client(pgClientConfig(this.url, { application_name: 'sluice-fence', options: '-c synchronous_commit=on' } as pg.ClientConfig));
    c.on('error', () => {
      if (this.client === c) this.client = null;
    });
    await c.connect();
    this.client = c;
    return c;
  }
}
