// Micro benchmark (no servers): the in-process part of a backfill: COPY text → rows → planned
// commands → the MULTI's RESP bytes, for N rows like bench/backfill.ts's table. Prints CPU and GC
// time. Not a scenario of bench/run.ts: a quick A/B of the planning path on a noisy machine.
//   node --max-old-space-size=256 --no-node-snapshot --import tsx bench/micro-backfill.ts [rows]
import { PerformanceObserver } from 'node:perf_hooks';
import * as copyText from '../src/backfill/copy-text.js';
import { Batcher } from '../src/plan/batcher.js';
import { Planner } from '../src/plan/planner.js';
import { Windows } from '../src/plan/windows.js';
import { writeMulti } from '../src/redis/multi-exec.js';
import { RespWriter } from '../src/redis/resp-writer.js';
import { WATERMARK_PREFIX } from '../src/core/keyspace.js';
import { runtime } from '../test/unit/support/plan-fixtures.js';
import { T, table } from '../test/unit/support/tables.js';

const N = Number(process.argv[2] ?? 1_000_000);
const CHUNK = 20_000;
const items = table('public', 'items', [
  ['id', T.int8, true],
  ['name', T.text],
  ['price', T.numeric],
  ['qty', T.int4],
  ['updated_at', T.timestamptz],
]);

function copyChunk(first: number, n: number): Buffer[] {
  const lines: string[] = [];
  for (let g = first; g < first + n; g++) {
    const t = new Date(Date.UTC(2024, 0, 1) + g * 1000).toISOString().replace('T', ' ').replace('.000Z', '+00');
    lines.push(`${g}\titem ${g}\t${((g % 100000) / 100).toFixed(2)}\t${g % 1000}\t${t}\n`);
  }
  const all = Buffer.from(lines.join(''));
  const out: Buffer[] = [];
  for (let i = 0; i < all.length; i += 65536) out.push(all.subarray(i, i + 65536));
  return out;
}

const pre = (process.env.MICRO_ARRAYS ?? '') === '';
let n = 0;
const batcher = new (Batcher as unknown as new (...a: unknown[]) => Batcher)({ maxCommands: 5000, maxBytes: 8 << 20 }, () => `b${++n}`, () => pre);
const windows = new Windows();
const sink = runtime('items', { type: 'string', tables: ['public.items'], key: 'sluice:items:{id}' });
const planner = new Planner(batcher, windows, { failed: () => undefined, truncate: () => undefined, chunk: () => undefined }, () => [sink], () => 0n);
const chunks: Buffer[][] = [];
for (let first = 1; first <= N; first += CHUNK) chunks.push(copyChunk(first, Math.min(CHUNK, N - first + 1)));

let gcMs = 0;
new PerformanceObserver((l) => {
  for (const e of l.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });

if (process.env.MICRO_MARK) console.log('START');
const cpu = process.cpuUsage();
const started = performance.now();
let bytes = 0;
let lsn = 0x1000n;
const msg = (text: string) => ({ tag: 'message' as const, lsn: lsn++, transactional: false, prefix: WATERMARK_PREFIX, content: Buffer.from(text) });
for (let c = 0; c < chunks.length; c++) {
  const id = `w${c}`;
  void windows.register(id, 'rows', 'items', items);
  planner.message(msg(`lw:${id}`), 0);
  const C = copyText as Record<string, unknown>;
  let rows: unknown;
  if (typeof C.CopyRows === 'function') {
    const r = new (C.CopyRows as new () => { push(b: Buffer): void; end(): void })();
    for (const b of chunks[c]!) r.push(b);
    r.end();
    rows = r;
  } else {
    const list: unknown[] = [];
    const p = new (C.CopyTextParser as new () => { push(b: Buffer, f: (r: unknown) => void): void; end(): void })();
    for (const b of chunks[c]!) p.push(b, (r) => list.push(r));
    p.end();
    rows = list;
  }
  windows.fillRows(id, rows as never, [['HSET', 'sluice:backfill:items', 'public.items', '{}']]);
  planner.message(msg(`hw:${id}`), 0);
  for (let b = batcher.next(); b !== null; b = batcher.next()) {
    for (const part of b.parts.values()) {
      const enc = (part as { encoded?: { bytes(): Buffer } | null }).encoded;
      if (enc) {
        // the lane writes these bytes as they are (multi-exec.ts execGroupResp)
        bytes += enc.bytes().length;
        continue;
      }
      const w = new RespWriter(256 + 160 * part.commands.length);
      writeMulti(w, { markerKey: 'm', batchId: b.id, commands: part.commands, origins: part.origins, positions: [['p', '0/1']], ...{ encoded: (part as { encoded?: unknown }).encoded ?? null } } as never);
      bytes += w.finish().length;
    }
    for (const cb of b.onApplied) cb();
    for (const part of b.parts.values()) (part as { encoded?: { release?(): void } | null }).encoded?.release?.();
  }
}
const wall = performance.now() - started;
const used = process.cpuUsage(cpu);
console.log(JSON.stringify({ rows: N, pre, cpu_s: +((used.user + used.system) / 1e6).toFixed(2), wall_s: +(wall / 1000).toFixed(2), gc_ms: Math.round(gcMs), mb: Math.round(bytes / 1048576) }));
