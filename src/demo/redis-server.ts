// The redis-server of `sluice demo`: from PATH, on a free port of 127.0.0.1, in its own process group.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../util/free-port.js';
import { sleep, stopLeftover, tail, terminate } from './processes.js';

export const REDIS_NOT_FOUND_MESSAGE =
  'redis-server was not found on PATH: install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) and run sluice demo again';


function redisPing(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const socket = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolvePromise(ok);
    };
    const timer = setTimeout(() => done(false), 1000);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d: string) => {
      buf += d;
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

export async function startRedisServer(redisBin: string, dir: string, log: (l: string) => void): Promise<{ child: ChildProcess; url: string }> {
  await mkdir(dir, { recursive: true });
  const pidFile = join(dir, 'redis.pid');
  await stopLeftover(pidFile, 'redis-server', 'SIGTERM', 'redis-server', log);
  const port = await freePort();
  const logFile = join(dir, 'redis.log');
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      redisBin,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--pidfile', pidFile, '--daemonize', 'no'],
      { stdio: ['ignore', fd, fd], detached: true },
    );
  } finally {
    closeSync(fd);
  }
  child.unref();
  let exitReason: string | undefined;
  child.once('error', (err) => (exitReason ??= `could not be started (${err.message})`));
  child.once('exit', (code, signal) => (exitReason ??= `exited (code ${code}, signal ${signal})`));
  const deadline = Date.now() + 15_000;
  while (!(await redisPing(port))) {
    if (exitReason) throw new Error(`redis-server ${exitReason}; ${logFile}:\n${tail(logFile)}`);
    if (Date.now() > deadline) {
      await terminate(child, [['SIGKILL', 2000]]);
      throw new Error(`redis-server did not answer on port ${port} within 15 s; ${logFile}:\n${tail(logFile)}`);
    }
    await sleep(25);
  }
  return { child, url: `redis://127.0.0.1:${port}` };
}
