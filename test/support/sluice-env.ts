import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPostgres, type TestPostgres } from '../harness/postgres.js';
import { startRedis, type TestRedis } from '../harness/redis.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { freePort } from '../../src/util/free-port.js';

/**
 * A Postgres, a Redis and a config directory for end-to-end tests that run `bin/sluice` as a
 * child process, as a user would.
 */
export interface SluiceTestEnv {
  pg: TestPostgres;
  redis: TestRedis;
  dir: string;
  httpPort: number;
  /** writes sluice.yaml with the given sinks section (YAML text, indented under `sinks:`) */
  writeConfig(sinksYaml: string, extra?: string): string;
  start(configPath?: string): Promise<ManagedProcess>;
  stop(): Promise<void>;
}

export async function createSluiceTestEnv(): Promise<SluiceTestEnv> {
  const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-'));
  const httpPort = await freePort();
  const running: ManagedProcess[] = [];
  const env: SluiceTestEnv = {
    pg,
    redis,
    dir,
    httpPort,
    writeConfig(sinksYaml: string, extra = ''): string {
      const path = join(dir, 'sluice.yaml');
      writeFileSync(
        path,
        `source:\n  url: ${pg.url}\nredis:\n  main:\n    url: ${redis.url}\nsinks:\n${sinksYaml}\nhttp:\n  port: ${httpPort}\nlog:\n  level: info\n${extra}`,
      );
      return path;
    },
    async start(configPath = join(dir, 'sluice.yaml')): Promise<ManagedProcess> {
      const p = spawnSluice(['start', '-c', configPath]);
      running.push(p);
      await p.waitForLine(/sluice started/, 30_000);
      return p;
    },
    async stop(): Promise<void> {
      await Promise.all(running.map((p) => p.stop(3000)));
      await Promise.all([pg.stop(), redis.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return env;
}

/** Polls until `check` returns true (or throws on timeout with the last value seen). */
export async function eventually<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (ok(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
