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
  /** where new connections go (retarget() changes it) */
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
  /**
   * New connections go to `port` from now on (a virtual IP or DNS name moved to a promoted
   * standby); open ones stay where they are (cut() them to move them too).
   */
  retarget(port: number): void;
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

/**
 * One direction of a connection: chunks from `from` written to `to` strictly in order (one FIFO,
 * one timer: a later chunk never overtakes an earlier one, whatever the delays), held while
 * stalled, each written no earlier than its arrival plus the delay in force when it arrived.
 */
class Direction {
  private readonly queue: { chunk: Buffer; due: number }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly from: Socket,
    private readonly to: Socket,
    private readonly proxy: ProxyState,
  ) {
    from.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  private onData(chunk: Buffer): void {
    this.proxy.stats.bytes += chunk.length;
    if (this.proxy.stalled) this.from.pause();
    if (this.queue.length === 0 && !this.proxy.stalled && this.proxy.delayMs <= 0) {
      this.write(chunk);
      return;
    }
    this.queue.push({ chunk, due: Date.now() + this.proxy.delayMs });
    this.pump();
  }

  /** writes what is due, in order, and waits for the head of the queue */
  private pump(): void {
    if (this.timer !== null || this.proxy.stalled) return;
    while (this.queue.length > 0 && this.queue[0]!.due <= Date.now()) this.write(this.queue.shift()!.chunk);
    if (this.queue.length === 0) return;
    const t = setTimeout(() => {
      this.proxy.timers.delete(t);
      this.timer = null;
      this.pump();
    }, Math.max(1, this.queue[0]!.due - Date.now()));
    this.timer = t;
    this.proxy.timers.add(t);
  }

  private write(chunk: Buffer): void {
    if (!this.to.destroyed) this.to.write(chunk);
  }

  /** after resume(): what waited goes out (in order, when due), then reading starts again */
  flush(): void {
    this.pump();
    if (!this.from.destroyed) this.from.resume();
  }

  pauseReading(): void {
    this.from.pause();
  }

  /** stall() while a timer waits: it stops; flush() starts it again */
  stopTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.proxy.timers.delete(this.timer);
      this.timer = null;
    }
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
  let targetPort = opts.targetPort;

  const onConnection = (client: Socket): void => {
    state.stats.accepted++;
    client.on('error', () => {});
    if (Date.now() < state.refuseUntil || stopped) {
      state.stats.cut++;
      reset(client);
      return;
    }
    client.setNoDelay(true);
    const upstream = connect({ host: targetHost, port: targetPort });
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
    get targetPort() {
      return targetPort;
    },
    stats: state.stats,
    get stalled() {
      return state.stalled;
    },
    stall() {
      state.stalled = true;
      for (const p of pairs) {
        for (const d of p.directions) {
          d.pauseReading();
          d.stopTimer();
        }
      }
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
    retarget(p) {
      targetPort = p;
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
