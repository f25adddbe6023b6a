// The workload: one writer connection (so that commit order is the order of `audit.seq`),
// straight to Postgres (not through the proxy Sluice uses), committing transactions drawn from
// the seed: inserts, updates that move rows between groups, regions (partitions) and keys,
// deletes, multi-row transactions, statements touching many rows, a 100 KB TOASTed column
// updated with and without it, a composite key, and 20,000-row transactions.
//
// It keeps going through Postgres restarts (reconnects, and runs the transaction again: its
// statements are upserts and conditional updates, so a second run is as valid as the first), and
// through a standby taking over: it connects to whatever `url()` says the primary is now. It
// remembers the xid of the last transaction Postgres acknowledged, which a takeover checks on the
// new primary.
// It stays at most `lagBudget` transactions ahead of what Sluice applied (read from Redis).

import pg from 'pg';
import { BEAT_PROGRESS, BIG_ROWS, REGIONS, TENANTS, docBodySql, type IdSpace } from './schema.js';
import type { Rng } from './rng.js';
import type { RedisView } from './sinks.js';

export interface WorkloadOptions {
  /** the primary's url now (asked at each connection) */
  url: () => string;
  rng: Rng;
  ids: IdSpace;
  /** large (20,000-row) transactions, spread over the run */
  bigCount: number;
  /** roughly how many transactions the run makes (spreads the large ones) */
  expectedTransactions: number;
  /** the most transactions the writer may be ahead of Sluice */
  lagBudget: number;
  /** where Sluice's progress is read (the beat sink on the main Redis) */
  progressView: RedisView;
  log(line: string): void;
}

const BIG_CYCLE = ['insert', 'update', 'delete', 'insert', 'update', 'update'] as const;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Workload {
  /** transactions acknowledged by Postgres */
  committed = 0;
  /** attempts that failed with a connection error (run again) */
  retried = 0;
  /** transactions that failed in SQL and were rolled back (should stay 0) */
  rolledBack = 0;
  bigDone = 0;
  /** the xid (xid8, as text) of the last acknowledged transaction that wrote something */
  lastAckedXid: string | undefined;
  /** what Sluice applied, as last read */
  applied = 0;
  /** the writer waits once it has committed this many transactions (the runner paces it) */
  allowance = Number.POSITIVE_INFINITY;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private client: pg.Client | undefined;
  private txIndex = 0;
  private bigAt: number[];
  private waiters: { n: number; resolve: () => void }[] = [];
  private lastError = '';

  constructor(private readonly o: WorkloadOptions) {
    // the large transactions at evenly spread points of the run, the first one early
    this.bigAt = Array.from({ length: o.bigCount }, (_, i) => Math.floor(((i + 0.5) * o.expectedTransactions) / Math.max(1, o.bigCount)));
  }

  start(): void {
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.loop;
    await this.client?.end().catch(() => undefined);
  }

  /** resolves once `n` transactions are committed */
  waitCommitted(n: number): Promise<void> {
    if (this.committed >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ n, resolve }));
  }

  private async connect(): Promise<pg.Client> {
    for (;;) {
      if (this.client) return this.client;
      const c = new pg.Client({ connectionString: this.o.url(), connectionTimeoutMillis: 3000 });
      c.on('error', () => {});
      try {
        await c.connect();
        this.client = c;
        return c;
      } catch {
        await c.end().catch(() => undefined);
        await sleep(100);
      }
    }
  }

  private async readApplied(): Promise<void> {
    try {
      const v = await this.o.progressView.client.get(`beat:${BEAT_PROGRESS}`);
      if (v !== null) this.applied = Number((JSON.parse(v) as { n: number }).n);
    } catch {
      // Redis unreachable: keep the last value
    }
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      if (this.committed >= this.allowance) {
        await sleep(20);
        continue;
      }
      if (this.committed - this.applied > this.o.lagBudget) {
        await this.readApplied();
        if (this.committed - this.applied > this.o.lagBudget) await sleep(20);
        continue;
      }
      const sql = this.nextTransaction();
      for (;;) {
        if (this.stopping) return;
        const c = await this.connect();
        try {
          const results = (await c.query(sql)) as unknown as pg.QueryResult[];
          this.committed++;
          const xid = results.find((r) => r.fields?.some((f) => f.name === 'acked_xid'))?.rows[0]?.acked_xid as string | null | undefined;
          if (xid) this.lastAckedXid = xid;
          break;
        } catch (err) {
          const code = (err as { code?: string }).code;
          // a connection error (Postgres restarting, a socket reset: ECONNRESET, …): reconnect and
          // run the transaction again
          if (code === undefined || /^(08|57P)/.test(code) || /^E[A-Z]+$/.test(code)) {
            this.retried++;
            this.client = undefined;
            await c.end().catch(() => undefined);
            await sleep(50);
            continue;
          }
          this.rolledBack++;
          const msg = `${code} ${(err as Error).message}`;
          if (msg !== this.lastError) this.o.log(`workload: transaction rolled back: ${msg}`);
          this.lastError = msg;
          await c.query('rollback').catch(() => undefined);
          break;
        }
      }
      if (this.committed % 10 === 0) await this.readApplied();
      for (const w of [...this.waiters]) {
        if (this.committed >= w.n) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    }
  }

  /** the next transaction as one simple-query string */
  private nextTransaction(): string {
    const i = this.txIndex++;
    const rng = this.o.rng;
    const stmts: string[] = [];
    if (this.bigAt.length > 0 && i >= this.bigAt[0]!) {
      this.bigAt.shift();
      const what = BIG_CYCLE[this.bigDone % BIG_CYCLE.length]!;
      this.bigDone++;
      this.o.log(`workload: ${BIG_ROWS}-row transaction (${what}) at transaction ${i}`);
      if (what === 'insert') {
        stmts.push(`insert into bulk select g, g % 7, nextval('fault_ver') from generate_series(1, ${BIG_ROWS}) g on conflict (id) do update set grp = excluded.grp, ver = excluded.ver`);
      } else if (what === 'update') {
        stmts.push(`update bulk set grp = (grp + 1) % 7, ver = nextval('fault_ver')`);
      } else {
        stmts.push('delete from bulk');
      }
    } else {
      const r = rng.next();
      const n = r < 0.45 ? 1 : r < 0.85 ? rng.between(2, 5) : rng.between(6, 25);
      for (let k = 0; k < n; k++) stmts.push(this.op());
    }
    // every tenth transaction carries the writer's progress
    if ((i + 1) % 10 === 0) stmts.push(`update beat set n = ${this.committed + 1} where id = ${BEAT_PROGRESS}`);
    // the transaction's xid, if it wrote anything (a takeover checks the last one acknowledged)
    stmts.push('select pg_current_xact_id_if_assigned()::text as acked_xid');
    return `begin; ${stmts.join('; ')}; commit;`;
  }

  private op(): string {
    const rng = this.o.rng;
    const ids = this.o.ids;
    const ver = `nextval('fault_ver')`;
    const table = rng.weighted([['acct', 35], ['mv', 30], ['ck', 10], ['part', 12], ['doc', 4], ['bulk', 3]] as const);
    const g = (): number => rng.int(ids.groups);
    // a place on Earth Redis can index (latitude within ±85.05)
    const lon = (): string => ((rng.int(36_000_000) - 18_000_000) / 100_000).toFixed(5);
    const lat = (): string => ((rng.int(17_000_000) - 8_500_000) / 100_000).toFixed(5);
    const word = (): string => `w${rng.int(100_000)}`;
    switch (table) {
      case 'acct':
      case 'mv': {
        const id = 1 + rng.int(table === 'acct' ? ids.acct : ids.mv);
        const last = table === 'acct' ? 'name' : 'tag';
        const kind = rng.weighted([['upsert', 4], ['move', 3], ['score', 2], ['place', 1], ['null', table === 'acct' ? 1 : 0], ['delete', 2], ['group', 0.3]] as const);
        switch (kind) {
          case 'upsert': {
            const cols = table === 'acct' ? 'id, grp, score, ver, name, note, lon, lat' : 'id, grp, score, ver, tag, lon, lat';
            const vals = table === 'acct' ? `${id}, ${g()}, ${rng.int(1000)}, ${ver}, '${word()}', ${rng.chance(0.3) ? 'null' : `'${word()}'`}, ${lon()}, ${lat()}` : `${id}, ${g()}, ${rng.int(1000)}, ${ver}, '${word()}', ${lon()}, ${lat()}`;
            const set = `grp = excluded.grp, score = excluded.score, ver = excluded.ver, ${table === 'acct' ? 'name = excluded.name, note = excluded.note' : 'tag = excluded.tag'}, lon = excluded.lon, lat = excluded.lat`;
            return `insert into ${table} (${cols}) values (${vals}) on conflict (id) do update set ${set}`;
          }
          case 'place':
            return `update ${table} set lon = ${lon()}, lat = ${lat()}, ver = ${ver} where id = ${id}`;
          case 'move':
            return `update ${table} set grp = ${g()}, ver = ${ver} where id = ${id}`;
          case 'score':
            return `update ${table} set score = ${rng.int(1000)}, ${last} = '${word()}', ver = ${ver} where id = ${id}`;
          case 'null':
            return `update acct set note = null, ver = ${ver} where id = ${id}`;
          case 'delete':
            return `delete from ${table} where id = ${id}`;
          case 'group':
            return `update ${table} set score = score + 1, ver = ${ver} where grp = ${g()}`;
        }
        throw new Error('unreachable');
      }
      case 'ck': {
        const t = rng.pick(TENANTS);
        const id = 1 + rng.int(ids.ck);
        const kind = rng.weighted([['upsert', 3], ['update', 2], ['delete', 1]] as const);
        if (kind === 'upsert') return `insert into ck values ('${t}', ${id}, ${ver}, ${rng.int(1000)}) on conflict (tenant, id) do update set ver = excluded.ver, val = excluded.val`;
        if (kind === 'update') return `update ck set val = val + 1, ver = ${ver} where tenant = '${t}' and id = ${id}`;
        return `delete from ck where tenant = '${t}' and id = ${id}`;
      }
      case 'part': {
        const region = rng.pick(REGIONS);
        const id = 1 + rng.int(ids.part);
        const kind = rng.weighted([['upsert', 3], ['update', 2], ['move', 2], ['delete', 1]] as const);
        if (kind === 'upsert') return `insert into part values (${region}, ${id}, ${ver}, ${rng.int(1000)}) on conflict (region, id) do update set ver = excluded.ver, val = excluded.val`;
        if (kind === 'update') return `update part set val = val + 1, ver = ${ver} where region = ${region} and id = ${id}`;
        if (kind === 'delete') return `delete from part where region = ${region} and id = ${id}`;
        // to another partition (a delete and an insert in the WAL), unless that key is taken
        const to = rng.pick(REGIONS.filter((r) => r !== region));
        return `update part set region = ${to}, ver = ${ver} where region = ${region} and id = ${id} and not exists (select 1 from part where region = ${to} and id = ${id})`;
      }
      case 'doc': {
        const id = 1 + rng.int(ids.doc);
        const kind = rng.weighted([['title', 6], ['body', 1], ['upsert', 1], ['delete', 0.4]] as const);
        // title only: the 100 KB body is not in the WAL record (unchanged TOAST)
        if (kind === 'title') return `update doc set title = '${word()}', ver = ${ver} where id = ${id}`;
        if (kind === 'body') return `update doc set body = ${docBodySql(word())}, ver = ${ver} where id = ${id}`;
        if (kind === 'delete') return `delete from doc where id = ${id}`;
        return `insert into doc values (${id}, ${ver}, '${word()}', ${docBodySql(word())}) on conflict (id) do update set ver = excluded.ver, title = excluded.title`;
      }
      case 'bulk':
        return `update bulk set grp = ${rng.int(7)}, ver = ${ver} where id = ${1 + rng.int(BIG_ROWS)}`;
    }
  }
}

/** rows present before Sluice's first start (its initial backfill copies them) */
export function prepopulateSql(ids: IdSpace): string {
  const half = (n: number): number => Math.max(1, Math.floor(n / 2));
  return `
    insert into acct select g, g % ${ids.groups}, g % 1000, nextval('fault_ver'), 'seed' || g, case when g % 3 = 0 then null else 'note' || g end, (g * 7.31) % 360 - 180, (g * 3.17) % 170 - 85 from generate_series(1, ${half(ids.acct)}) g;
    insert into mv select g, g % ${ids.groups}, g % 1000, nextval('fault_ver'), 'seed' || g, (g * 5.13) % 360 - 180, (g * 2.71) % 170 - 85 from generate_series(1, ${half(ids.mv)}) g;
    insert into doc select g, nextval('fault_ver'), 'seed' || g, ${docBodySql("seed' || g || '")} from generate_series(1, ${ids.doc}) g;
    insert into ck select t, g, nextval('fault_ver'), g from unnest(array[${TENANTS.map((t) => `'${t}'`).join(', ')}]) t, generate_series(1, ${half(ids.ck)}) g;
    insert into part select r, g, nextval('fault_ver'), g from unnest(array[${REGIONS.join(', ')}]) r, generate_series(1, ${half(ids.part)}) g;
  `;
}
