import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

// ---------------------------------------------------------------------------------------------
// Last-resort cleanup when this Node process goes away
// ---------------------------------------------------------------------------------------------

const cleanups = new Set<() => void>();
let hooksInstalled = false;

function runCleanups(): void {
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    try {
      fn();
    } catch {
      // best effort: we are exiting
    }
  }
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', runCleanups);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      // Someone else handles this signal: they decide when to exit, and the 'exit' hook runs
      // the cleanups then (so that, say, a graceful shutdown can still reach its servers).
      if (process.listenerCount(sig) > 1) return;
      runCleanups();
      // We were the only listener: restore the default behaviour, dying of this signal.
      process.removeListener(sig, handler);
      process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

/**
 * Registers a synchronous function run when this process exits (normally, through
 * process.exit(), or killed by SIGINT/SIGTERM/SIGHUP). It cannot run on SIGKILL.
 * Returns a function that unregisters it.
 */
export function onProcessExit(fn: () => void): () => void {
  installHooks();
  cleanups.add(fn);
  return () => {
    cleanups.delete(fn);
  };
}

// ---------------------------------------------------------------------------------------------
// Managed child processes
// ---------------------------------------------------------------------------------------------

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** set when the process could not be spawned at all */
  error?: Error;
}

export interface OutputLine {
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface WaitForLineOptions {
  /** index into `lines` to search from (see mark()); default 0: the whole output so far */
  from?: number;
  /** default: both */
  stream?: 'stdout' | 'stderr' | 'both';
}

export interface ManagedProcess {
  readonly child: ChildProcess;
  readonly pid: number | undefined;
  readonly name: string;
  /** stdout lines, without line terminators */
  readonly stdout: string[];
  /** stderr lines, without line terminators */
  readonly stderr: string[];
  /** stdout and stderr lines in order of arrival */
  readonly lines: OutputLine[];
  /** resolves (never rejects) when the process has exited and its output is drained */
  readonly exited: Promise<ExitInfo>;
  /** undefined while running */
  readonly exitInfo: ExitInfo | undefined;
  readonly running: boolean;
  /** the current length of `lines`: pass as `from` to waitForLine to only see newer output */
  mark(): number;
  /**
   * Resolves with the first line matching `re` (from `opts.from` on); rejects on timeout or
   * when the process exits first, with the output tail in the message.
   */
  waitForLine(re: RegExp, timeoutMs?: number, opts?: WaitForLineOptions): Promise<string>;
  /** sends `signal` (default SIGTERM) and resolves when the process has exited */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL after `graceMs` (default 5000); resolves when exited */
  stop(graceMs?: number): Promise<ExitInfo>;
  /** the last `n` lines, joined, for error messages */
  tail(n?: number): string;
}

export interface SpawnManagedOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  uid?: number;
  gid?: number;
  /** name used in error messages; default: the command's basename */
  name?: string;
  /** called for every output line (e.g. to echo it while debugging) */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  /**
   * Do not let the child (and its output pipes) keep this Node process alive: a server that a
   * test forgot to stop must not hang the test run (the exit hook then kills it). Waiting on
   * `exited`, kill() or stop() still keeps the process alive until the child is gone.
   */
  unref?: boolean;
  /**
   * signal sent to the child if this Node process exits while the child still runs
   * (default SIGKILL); false: leave it running
   */
  killOnExit?: NodeJS.Signals | false;
}

/** Spawns a child process, capturing its stdout/stderr lines. */
export function spawnManaged(command: string, args: readonly string[], opts: SpawnManagedOptions = {}): ManagedProcess {
  const name = opts.name ?? command.split('/').pop() ?? command;
  const child = spawn(command, [...args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    uid: opts.uid,
    gid: opts.gid,
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  if (opts.unref) {
    child.unref();
    for (const stream of [child.stdout, child.stderr]) (stream as { unref?: () => void } | null)?.unref?.();
  }
  const stdout: string[] = [];
  const stderr: string[] = [];
  const lines: OutputLine[] = [];
  const listeners = new Set<() => void>();
  let exitInfo: ExitInfo | undefined;
  /** exited and all output drained */
  let finished = false;

  const push = (stream: 'stdout' | 'stderr', line: string): void => {
    const arr = stream === 'stdout' ? stdout : stderr;
    arr.push(line);
    lines.push({ stream, line });
    opts.onLine?.(line, stream);
    for (const l of [...listeners]) l();
  };

  const attach = (stream: 'stdout' | 'stderr'): Promise<void> =>
    new Promise((resolve) => {
      const readable = child[stream];
      if (!readable) return resolve();
      readable.setEncoding('utf8');
      let partial = '';
      readable.on('data', (chunk: string) => {
        partial += chunk;
        let nl: number;
        while ((nl = partial.indexOf('\n')) >= 0) {
          push(stream, partial.slice(0, nl).replace(/\r$/, ''));
          partial = partial.slice(nl + 1);
        }
      });
      const done = (): void => {
        if (partial.length > 0) push(stream, partial);
        partial = '';
        resolve();
      };
      readable.on('end', done);
      readable.on('close', done);
      readable.on('error', done);
    });
  const drained = Promise.all([attach('stdout'), attach('stderr')]);

  let unregister: () => void = () => {};
  const killOnExit = opts.killOnExit ?? 'SIGKILL';
  if (killOnExit !== false) {
    unregister = onProcessExit(() => {
      if (exitInfo === undefined && child.exitCode === null && child.signalCode === null) {
        try {
          child.kill(killOnExit);
        } catch {
          // already gone
        }
      }
    });
  }

  const exited = new Promise<ExitInfo>((resolve) => {
    let spawnError: Error | undefined;
    child.once('error', (err) => {
      spawnError = err;
      // a failed spawn may never emit 'close'
      if (child.pid === undefined) finish({ code: null, signal: null, error: err });
    });
    child.once('close', (code, signal) => finish({ code, signal, ...(spawnError ? { error: spawnError } : {}) }));
    function finish(info: ExitInfo): void {
      if (exitInfo !== undefined) return;
      exitInfo = info;
      unregister();
      void drained.then(() => {
        finished = true;
        resolve(info);
        for (const l of [...listeners]) l();
      });
    }
  });

  const tail = (n = 30): string =>
    lines
      .slice(-n)
      .map((l) => (l.stream === 'stderr' ? `[err] ${l.line}` : l.line))
      .join('\n');

  const describeExit = (info: ExitInfo): string =>
    info.error ? `failed to start: ${info.error.message}` : `exited (code ${info.code}, signal ${info.signal})`;

  const proc: ManagedProcess = {
    child,
    pid: child.pid,
    name,
    stdout,
    stderr,
    lines,
    get exited() {
      return opts.unref ? keepAlive(exited) : exited;
    },
    get exitInfo() {
      return exitInfo;
    },
    get running() {
      return exitInfo === undefined;
    },
    mark: () => lines.length,
    tail,
    waitForLine(re, timeoutMs = 10_000, wopts = {}) {
      const stream = wopts.stream ?? 'both';
      let next = wopts.from ?? 0;
      return new Promise<string>((resolve, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const check = (): void => {
          for (; next < lines.length; next++) {
            const l = lines[next]!; // next < lines.length
            if (stream !== 'both' && l.stream !== stream) continue;
            if (re.test(l.line)) {
              cleanup();
              resolve(l.line);
              return;
            }
          }
          if (finished) {
            cleanup();
            reject(new Error(`${name} ${describeExit(exitInfo!)} before printing a line matching ${re}; output tail:\n${tail()}`));
          }
        };
        const cleanup = (): void => {
          listeners.delete(check);
          if (timer) clearTimeout(timer);
        };
        listeners.add(check);
        timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${name} to print a line matching ${re}; output tail:\n${tail()}`));
        }, timeoutMs);
        check();
      });
    },
    kill(signal = 'SIGTERM') {
      if (exitInfo === undefined) {
        try {
          child.kill(signal);
        } catch {
          // already gone
        }
      }
      return proc.exited;
    },
    async stop(graceMs = 5000) {
      if (exitInfo !== undefined) return exited;
      void proc.kill('SIGTERM');
      if (await settlesWithin(exited, graceMs)) return proc.exited;
      return proc.kill('SIGKILL');
    },
  };
  return proc;
}

/** uid/gid of an OS user (through `id`), or undefined when the user does not exist. */
export async function lookupUser(name: string): Promise<{ uid: number; gid: number } | undefined> {
  const run = (flag: string): Promise<number | undefined> =>
    new Promise((resolve) => {
      execFile('id', [flag, name], (err, out) => {
        const n = Number.parseInt(String(out).trim(), 10);
        resolve(err || !Number.isFinite(n) ? undefined : n);
      });
    });
  const [uid, gid] = await Promise.all([run('-u'), run('-g')]);
  return uid === undefined || gid === undefined ? undefined : { uid, gid };
}

/**
 * true if `p` settles (either way) within `ms`, else false; the timer is cleared so that it
 * does not keep the process alive.
 */
export async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true as const, () => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `p`, keeping this Node process alive (a ref'd timer) until it settles. */
export function keepAlive<T>(p: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 60_000);
  const clear = (): void => clearInterval(timer);
  p.then(clear, clear);
  return p;
}
