// Samples Redis while the run goes on and remembers, per key (and hash field), the newest
// version it has seen. A key of a string or hash sink showing an older version than one it
// already showed is a discrepancy (a stale overwrite: a replay, a backfill chunk or a retried
// batch putting back an old value); so is a list or stream that got shorter.
//
// On a Redis where a fault may lose acknowledged writes (LOSSY_CONNS), what was seen before
// the fault is forgotten when the fault starts and samples are not taken until it is over: the
// rebuild that follows is watched again from scratch.

import type { Rng } from './rng.js';
import { TABLES, type IdSpace } from './schema.js';
import { handlerOf, render, templateOf, type Conn, type RedisView, type SinkSpec } from './sinks.js';

export interface MonitorViolation {
  sink: string;
  conn: Conn;
  key: string;
  field: string;
  /** the newest version seen before */
  seen: number;
  /** what was read now */
  now: number;
  at: string;
  what: 'older value' | 'history shrank';
}

/** "0/16B3748" or "0/16B3740:19999" (a position inside a large transaction) → the LSN */
export function lsnOf(position: string): bigint | undefined {
  const m = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)/.exec(position);
  return m ? (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`) : undefined;
}

/** a change of a Sluice position key seen by the tracer */
export interface PositionSample {
  at: string;
  key: string;
  value: string;
}

export class Monitor {
  samples = 0;
  readonly violations: MonitorViolation[] = [];
  /** Sluice's positions (sluice:pos:<sink>) as they moved, for the report of a lost change */
  readonly positions: PositionSample[] = [];
  private readonly newest = new Map<string, number>();
  private readonly paused = new Set<Conn>();
  private stopping = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly views: Record<Conn, RedisView>,
    private readonly specs: readonly SinkSpec[],
    private readonly rng: Rng,
    private readonly ids: IdSpace,
  ) {}

  /** also follows these position keys on `conn` (every 10 ms, changes only) */
  tracePositions(conn: Conn, keys: readonly string[]): void {
    const view = this.views[conn];
    const last = new Map<string, string>();
    this.loops.push(
      (async () => {
        while (!this.stopping) {
          await new Promise((r) => setTimeout(r, 10));
          const values = await Promise.all(keys.map((k) => view.client.get(k).catch(() => null)));
          keys.forEach((k, i) => {
            const v = values[i];
            if (v === null || v === undefined || last.get(k) === v) return;
            last.set(k, v);
            this.positions.push({ at: new Date().toISOString(), key: k, value: v });
          });
        }
      })(),
    );
  }

  start(): void {
    for (const conn of Object.keys(this.views) as Conn[]) {
      const mine = this.specs.filter((s) => s.conn === conn && (s.type === 'string' || s.type === 'hash' || s.type === 'list' || s.type === 'stream'));
      if (mine.length > 0) this.loops.push(this.loop(conn, mine, this.rng.fork(`monitor:${conn}`)));
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  /** a fault that may lose writes on `conn` begins: forget, and stop sampling there */
  beginLossy(conn: Conn): void {
    this.paused.add(conn);
    for (const k of [...this.newest.keys()]) if (k.startsWith(`${conn}|`)) this.newest.delete(k);
  }

  endLossy(conn: Conn): void {
    for (const k of [...this.newest.keys()]) if (k.startsWith(`${conn}|`)) this.newest.delete(k);
    this.paused.delete(conn);
  }

  private async loop(conn: Conn, specs: readonly SinkSpec[], rng: Rng): Promise<void> {
    const view = this.views[conn];
    while (!this.stopping) {
      await new Promise((r) => setTimeout(r, 15));
      if (this.paused.has(conn)) continue;
      const batch = Array.from({ length: 8 }, () => {
        const spec = rng.pick(specs);
        const key = render(templateOf(spec), TABLES[spec.table]!, TABLES[spec.table]!.sampleRow(rng, this.ids));
        return { spec, key };
      });
      await Promise.all(
        batch.map(async ({ spec, key }) => {
          if (key === undefined) return;
          const h = handlerOf(spec);
          let found: [string, number][];
          let what: MonitorViolation['what'];
          try {
            if (h.kind === 'state' && h.versions) {
              found = await h.versions(spec, view, key);
              what = 'older value';
            } else if (h.kind === 'history') {
              found = [['', await h.length(view, key)]];
              what = 'history shrank';
            } else return;
          } catch {
            return; // unreachable right now: that is the fault, not a finding
          }
          // a lossy fault may have started while this read was on its way
          if (this.paused.has(conn)) return;
          this.samples++;
          for (const [field, v] of found) {
            if (!Number.isFinite(v)) continue;
            const id = `${conn}|${spec.name}|${key}|${field}`;
            const before = this.newest.get(id);
            if (before !== undefined && v < before) {
              this.violations.push({ sink: spec.name, conn, key, field, seen: before, now: v, at: new Date().toISOString(), what });
            }
            if (before === undefined || v > before) this.newest.set(id, v);
          }
        }),
      );
    }
  }
}
