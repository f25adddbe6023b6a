// Process helpers of `sluice demo`: finding programs, running them, stopping them (also the ones
// a previous demo killed with -9 left running).
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { settlesWithin } from '../util/process.js';

/** uid/gid to run a server as, or undefined for our own */
export type Ids = { uid: number; gid: number } | undefined;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function findOnPath(name: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(delimiter)) {
    if (!d) continue;
    const candidate = join(d, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** the command line of a running process, '' when unknown */
function commandOf(pid: number): string {
  const r = spawnSync('ps', ['-p', String(pid), '-o', 'args='], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

async function waitForDeath(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(50);
  }
  return !isAlive(pid);
}

/** Stops a server a previous demo left running (it was killed -9 and could not stop it). */
export async function stopLeftover(pidFile: string, expect: string, signal: NodeJS.Signals, what: string, log: (l: string) => void): Promise<void> {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(pidFile, 'utf8').split('\n')[0] ?? '', 10);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !isAlive(pid)) return;
  if (!commandOf(pid).includes(expect)) return;
  log(`Stopping the ${what} left running by a previous demo (pid ${pid}) …`);
  process.kill(pid, signal);
  if (!(await waitForDeath(pid, 30_000))) {
    process.kill(pid, 'SIGKILL');
    await waitForDeath(pid, 5000);
  }
}

export function tail(file: string, n = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

export function run(cmd: string, args: string[], ids: Ids): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { ...(ids ?? {}), stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', LC_MESSAGES: 'C' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolvePromise() : reject(new Error(`${cmd} failed (exit code ${code}):\n${out.trim()}`))));
  });
}

/** Sends a signal and waits for the exit; escalates when the process takes too long. */
export async function terminate(child: ChildProcess, steps: Array<[NodeJS.Signals, number]>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (const [signal, ms] of steps) {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
    if (await settlesWithin(exited, ms)) return;
  }
}
