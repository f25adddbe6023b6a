// Throwaway Redis servers for the integration tests: `redis-server` from PATH on a free port of
// 127.0.0.1, no persistence, in its own temp dir. Never touches the system Redis on 6379.

import { existsSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { freePort } from '../../src/util/free-port.js';
import { onProcessExit, settlesWithin, spawnManaged } from '../../src/util/process.js';
import type { ManagedProcess } from '../../src/util/process.js';

export interface TestRedis {
  /** redis://127.0.0.1:PORT (redis://:PASSWORD@127.0.0.1:PORT with a password) */
  url: string;
  port: number;
  /** the server's working dir (dump.rdb lands here on restart({ keepData: true })) */
  dir: string;
  /** false between kill() and start() */
  readonly running: boolean;
  /** the current server process's output lines */
  readonly output: readonly string[];
  /** a new ioredis client for this server, disconnected by stop() */
  client(opts?: RedisOptions): Redis;
  /** stops the server and starts it again on the same port; data is lost unless keepData */
  restart(opts?: { keepData?: boolean }): Promise<void>;
  /** kills the server (default SIGKILL) and waits until it is gone; start() brings it back */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** starts the server again on the same port (empty), waits for PING; no-op when running */
  start(): Promise<void>;
  /** disconnects the clients, stops the server, removes its dir; idempotent */
  stop(): Promise<void>;
}

export interface StartRedisOptions {
  /** extra redis-server arguments, e.g. ['--maxmemory', '10mb'] */
  args?: string[];
  /** sets requirepass */
  password?: string;
}

const STARTUP_TIMEOUT_MS = 15_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Sends raw inline commands, resolves with the reply text (or rejects on connection error). */
function rawCommand(port: number, lines: string[], until: RegExp, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no reply within ${timeoutMs} ms (got ${JSON.stringify(buf)})`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(lines.map((l) => `${l}\r\n`).join('')));
    socket.on('data', (d: string) => {
      buf += d;
      if (until.test(buf)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(buf);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(buf);
    });
  });
}

/** Redis's AUTH argument as an inline command token. */
const quote = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

export async function startRedis(opts: StartRedisOptions = {}): Promise<TestRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-redis-'));
  const unregisterDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const auth = opts.password !== undefined ? [`AUTH ${quote(opts.password)}`] : [];
  const url = opts.password !== undefined ? `redis://:${encodeURIComponent(opts.password)}@127.0.0.1:${port}` : `redis://127.0.0.1:${port}`;
  const args = [
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--save', '',
    '--appendonly', 'no',
    '--dir', dir,
    '--daemonize', 'no',
    ...(opts.password !== undefined ? ['--requirepass', opts.password] : []),
    ...(opts.args ?? []),
  ];
  const clients = new Set<Redis>();
  let proc: ManagedProcess | undefined;
  let stopped = false;

  const launch = async (keepData: boolean): Promise<void> => {
    if (proc?.running) return;
    if (!keepData) rmSync(join(dir, 'dump.rdb'), { force: true });
    const p = spawnManaged('redis-server', args, { name: `redis-server :${port}`, unref: true });
    proc = p;
    const deadline = Date.now() + STARTUP_TIMEOUT_MS;
    for (;;) {
      if (!p.running) {
        await p.exited;
        const info = p.exitInfo!;
        if (info.error && (info.error as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new Error('redis-server was not found on PATH (apt-get install redis-server)');
        }
        throw new Error(`redis-server on port ${port} exited during startup (code ${info.code}, signal ${info.signal}):\n${p.tail()}`);
      }
      const reply = await rawCommand(port, [...auth, 'PING'], /\+PONG\r\n|-/).catch(() => undefined);
      if (reply?.includes('+PONG')) return;
      // -LOADING while a dump is loaded: retry; any other error reply is fatal
      if (reply?.startsWith('-') && !reply.includes('LOADING')) {
        await p.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} answered PING with ${JSON.stringify(reply)}`);
      }
      if (Date.now() > deadline) {
        await p.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} did not answer PING within ${STARTUP_TIMEOUT_MS} ms:\n${p.tail()}`);
      }
      await sleep(20);
    }
  };

  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    const p = proc;
    if (!p?.running) return;
    await p.kill(signal);
  };

  try {
    await launch(false);
  } catch (err) {
    unregisterDir();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url,
    port,
    dir,
    get running() {
      return proc?.running ?? false;
    },
    get output() {
      return proc?.stdout ?? [];
    },
    client(copts: RedisOptions = {}) {
      if (stopped) throw new Error('client() after stop()');
      const c = new Redis(url, { lazyConnect: false, ...copts });
      // connection errors are expected in fault tests (server killed); ioredis reconnects
      c.on('error', () => {});
      clients.add(c);
      c.once('end', () => clients.delete(c));
      return c;
    },
    async restart(ropts = {}) {
      if (stopped) throw new Error('restart() after stop()');
      const p = proc;
      if (p?.running) {
        if (ropts.keepData) {
          await rawCommand(port, [...auth, 'SHUTDOWN SAVE'], /-ERR/, 10_000).catch(() => '');
          // SHUTDOWN closes the connection without a reply on success
          if (!(await settlesWithin(p.exited, 10_000))) throw new Error(`redis-server on port ${port} did not shut down after SHUTDOWN SAVE`);
          if (!existsSync(join(dir, 'dump.rdb'))) throw new Error('restart({ keepData: true }): no dump.rdb was written');
        } else {
          await p.stop(5000);
        }
      }
      await launch(ropts.keepData ?? false);
    },
    kill,
    async start() {
      if (stopped) throw new Error('start() after stop()');
      await launch(false);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const c of clients) c.disconnect();
      clients.clear();
      if (proc?.running) await proc.stop(5000);
      unregisterDir();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisSuite {
  readonly redis: TestRedis;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/** For node:test suites: `const r = startRedisForSuite(); before(r.start); after(r.stop);` */
export function startRedisForSuite(opts: StartRedisOptions = {}): RedisSuite {
  let instance: TestRedis | undefined;
  return {
    get redis(): TestRedis {
      if (!instance) throw new Error('redis not started: call before(suite.start)');
      return instance;
    },
    async start() {
      instance = await startRedis(opts);
    },
    async stop() {
      const i = instance;
      instance = undefined;
      await i?.stop();
    },
  };
}
