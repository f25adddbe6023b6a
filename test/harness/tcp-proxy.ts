// A small TCP proxy for fault tests: put it between Sluice and Redis or Postgres, then stall,
// cut or delay what goes through it. Plain `node:net`, one process, no dependencies.
//
//   const proxy = await startTcpProxy({ targetPort: redis.port });
//   // point Sluice at 127.0.0.1:proxy.port
//   proxy.stall();  …  proxy.resume();       // bytes stop flowing both ways; connections stay open
//   proxy.cut({ refuseMs: 1000 });            // every connection reset; new ones reset for 1 s
//   proxy.delay(150);  …  proxy.delay(0);     // each chunk forwarded 150 ms late (order kept)

import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { freePort } from '../../src/util/free-port.js';

export interface TcpProxyStats {
  /** connections accepted so far */
  accepted: number;
  /** connections open now */
  open: number;
  /** connections reset by cut() or refused while refusing */
  cut: number;
  /** bytes forwarded, both directions */
  bytes: number;
}

export interface TcpProxy {
  /** the port the proxy listens on, on 127.0.0.1 */
  readonly port: number;
  readonly targetPort: number;
  readonly stats: TcpProxyStats;
  /** true between stall() and resume() */
  readonly stalled: boolean;
  /**
   * Stops forwarding in both directions: open connections stay open but nothing reaches the
   * other side (the sockets stop being read, so TCP backpressure builds up); new connections are
   * accepted and wait too. resume() delivers everything that waited, in order.
   */
  stall(): void;
  resume(): void;
  /**
   * Resets every open connection (RST on both sides). With `refuseMs`, connections made during
   * that time are reset as soon as they are accepted.
   */
  cut(opts?: { refuseMs?: number }): void;
  /** forwards each chunk `ms` late, order kept (0: no delay) */
  delay(ms: number): void;
  /** closes the listener and every connection; idempotent */
  stop(): Promise<void>;
}

export interface StartTcpProxyOptions {
  targetPort: number;
  /** default 127.0.0.1 */
  targetHost?: string;
  /** default: a free port */
  port?: number;
}

/** One direction of a connection: chunks from `from` written to `to`, honouring stall and delay. */
class Direction {
  private queue: Buffer[] = [];
  /** delayed chunks that came due while stalled (older than anything in `queue`) */
  private held: Buffer[] = [];
  private timerBusy = false;
  private lastDue = 0;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly proxy: ProxyState,
  ) {
    from.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  private onData(chunk: Buffer): void {
    this.proxy.stats.bytes += chunk.length;
    if (this.proxy.stalled) {
      this.queue.push(chunk);
      this.from.pause();
      return;
    }
    this.forward(chunk);
  }

  private forward(chunk: Buffer): void {
    const ms = this.proxy.delayMs;
    if (ms <= 0 && !this.timerBusy) {
      this.write(chunk);
      return;
    }
    // keep order: a chunk is never due before the one before it
    const due = Math.max(Date.now() + ms, this.lastDue);
    this.lastDue = due;
    this.timerBusy = true;
    const t = setTimeout(() => {
      this.proxy.timers.delete(t);
      if (this.proxy.stalled) {
        this.held.push(chunk);
      } else {
        this.write(chunk);
      }
      if (due >= this.lastDue) this.timerBusy = false;
    }, Math.max(0, due - Date.now()));
    this.proxy.timers.add(t);
  }

  private write(chunk: Buffer): void {
    if (!this.to.destroyed) this.to.write(chunk);
  }

  /** after resume(): what waited goes out, then reading starts again */
  flush(): void {
    const waiting = [...this.held, ...this.queue];
    this.held = [];
    this.queue = [];
    for (const c of waiting) this.forward(c);
    if (!this.from.destroyed) this.from.resume();
  }

  pauseReading(): void {
    this.from.pause();
  }
}

interface ProxyState {
  stalled: boolean;
  delayMs: number;
  refuseUntil: number;
  stats: TcpProxyStats;
  timers: Set<NodeJS.Timeout>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  directions: Direction[];
}

function reset(s: Socket): void {
  if (s.destroyed) return;
  // an RST, as a dropped connection or a crashed peer gives (Node ≥ 18.3)
  if (typeof s.resetAndDestroy === 'function') s.resetAndDestroy();
  else s.destroy();
}

export async function startTcpProxy(opts: StartTcpProxyOptions): Promise<TcpProxy> {
  const targetHost = opts.targetHost ?? '127.0.0.1';
  const port = opts.port ?? (await freePort());
  const state: ProxyState = { stalled: false, delayMs: 0, refuseUntil: 0, stats: { accepted: 0, open: 0, cut: 0, bytes: 0 }, timers: new Set() };
  const pairs = new Set<Pair>();
  let stopped = false;

  const onConnection = (client: Socket): void => {
    state.stats.accepted++;
    client.on('error', () => {});
    if (Date.now() < state.refuseUntil || stopped) {
      state.stats.cut++;
      reset(client);
      return;
    }
    client.setNoDelay(true);
    const upstream = connect({ host: targetHost, port: opts.targetPort });
    upstream.setNoDelay(true);
    upstream.on('error', () => {});
    const pair: Pair = { client, upstream, directions: [] };
    pair.directions.push(new Direction(client, upstream, state), new Direction(upstream, client, state));
    if (state.stalled) for (const d of pair.directions) d.pauseReading();
    pairs.add(pair);
    state.stats.open++;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      pairs.delete(pair);
      state.stats.open--;
      // one side gone: the other goes too (an RST if it was an error, else an orderly end)
      if (!client.destroyed) client.end();
      if (!upstream.destroyed) upstream.end();
      setTimeout(() => {
        client.destroy();
        upstream.destroy();
      }, 1000).unref();
    };
    client.on('close', close);
    upstream.on('close', close);
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
  };

  const server: Server = createServer({ pauseOnConnect: false }, onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: '127.0.0.1' }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();

  return {
    port,
    targetPort: opts.targetPort,
    stats: state.stats,
    get stalled() {
      return state.stalled;
    },
    stall() {
      state.stalled = true;
      for (const p of pairs) for (const d of p.directions) d.pauseReading();
    },
    resume() {
      if (!state.stalled) return;
      state.stalled = false;
      for (const p of pairs) for (const d of p.directions) d.flush();
    },
    cut(copts = {}) {
      if (copts.refuseMs) state.refuseUntil = Date.now() + copts.refuseMs;
      for (const p of [...pairs]) {
        state.stats.cut++;
        reset(p.client);
        reset(p.upstream);
      }
    },
    delay(ms) {
      state.delayMs = Math.max(0, ms);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      state.stalled = false;
      for (const t of state.timers) clearTimeout(t);
      state.timers.clear();
      for (const p of [...pairs]) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
