import type pg from 'pg';
import type { SluiceConfig } from '../config/schema.js';
import type { Pipeline } from '../runtime/pipeline.js';
import type { OrphanItem } from '../plan/windows.js';
import type { RedisClient } from '../redis/connect.js';
import { createTextClient } from '../pg/text-client.js';
import { withWatermarkWindow } from '../pg/watermarks.js';
import { isOwnKey } from '../core/keyspace.js';
import { SluiceError } from '../util/errors.js';
import { copyChunks, keysOfType, orphanPrefixes, planRow, readSinkTables, redisTypeOf, scanPrefix, unverifiableReason } from './shared.js';

/** What one orphan sweep found and did. */
export interface OrphanSweepResult {
  /** skipped: the sink's keys cannot be told apart from others' (see notes), or it keeps no per-row state */
  state: 'done' | 'skipped';
  /** keys, members, fields and bits no row accounts for, when Redis was scanned */
  candidates: number;
  /** removed at the high watermark */
  deleted: number;
  /** candidates the stream wrote (or removed) between the watermarks: kept */
  kept: number;
  prefixes: string[];
  notes: string[];
}

/** Which kind of item a sink keeps inside a key (null: a key per row). */
function itemKind(cfg: SluiceConfig['sinks'][number]): OrphanItem['kind'] | null {
  if (cfg.type === 'set') return 'member';
  if (cfg.type === 'zset' || cfg.type === 'geo') return 'zmember';
  if (cfg.type === 'bitmap') return 'bit';
  if (cfg.type === 'hash' && cfg.mode === 'field') return 'field';
  return null;
}

/**
 * Removes what a sink holds in Redis that no row of Postgres accounts for: whole keys under the
 * sink's fixed prefixes, and, in the keys rows do account for, the members (set, zset, geo),
 * fields (hash `mode: field`) and bits (bitmap) of rows that are gone. Done through an orphan
 * window (DBLog): an orphan window is opened, the low watermark is written, the expected keys and
 * items are computed from the rows (COPY + the sink's own `plan()`) and Redis is scanned; what no
 * row accounts for is handed to the window and removed when the high watermark comes through the
 * stream, in stream order, except what the stream wrote or removed between the watermarks (a row
 * inserted meanwhile keeps its key or member).
 *
 * Used by `sluice verify --repair` (verify/repair.ts) and after a backfill Sluice starts because
 * Redis lost writes (a row deleted in the lost window otherwise keeps its key forever).
 *
 * Memory: the sink's expected keys and items in Sets (~100 bytes per row).
 */
export interface SweepOptions {
  /**
   * Sluice sweeps by itself (after Redis lost writes): a sink that does not apply deletes keeps
   * the keys of deleted rows on purpose, so it is not swept (a user's repair does sweep it).
   */
  readonly automatic?: boolean;
}

export async function sweepOrphans(config: SluiceConfig, pipeline: Pipeline, sinkName: string, opts: SweepOptions = {}): Promise<OrphanSweepResult> {
  const result: OrphanSweepResult = { state: 'skipped', candidates: 0, deleted: 0, kept: 0, prefixes: [], notes: [] };
  const cfg = config.sinks.find((s) => s.name === sinkName);
  const runtime = pipeline.sinkRuntime(sinkName);
  if (!cfg || !runtime) throw new SluiceError('sink_not_found', `no sink named "${sinkName}"`);
  if (cfg.type === 'aggregate') {
    result.notes = ['an aggregate backfill removes the groups GROUP BY does not have: no orphan sweep'];
    return result;
  }
  const cannot = unverifiableReason(cfg);
  if (cannot !== null) {
    result.notes = [`no orphan sweep: ${cannot}`];
    return result;
  }
  if (opts.automatic === true && !cfg.actions.includes('delete')) {
    result.notes = ['the sink does not apply deletes: the keys of deleted rows are kept on purpose, so nothing is swept'];
    return result;
  }
  const sink = runtime.sink;
  const redis = pipeline.redisFor(sinkName);
  const client: pg.Client = createTextClient(config.source.url, 'sluice-orphan-sweep');
  client.on('error', () => undefined);
  await client.connect();
  try {
    // the watermarks must reach the WAL (and the walsender) at once
    await client.query('set synchronous_commit = on');
    const tables = await readSinkTables(client, cfg.tables);
    const { prefixes, notes } = await orphanPrefixes(client, config, cfg, sink, tables);
    result.notes = notes;
    const prefixList = [...new Set(prefixes.values())];
    result.prefixes = prefixList;
    if (prefixList.length === 0) return result;
    const kind = itemKind(cfg);
    const type = redisTypeOf(cfg);
    const opened = pipeline.openOrphanWindow(sinkName);
    const window = { ...opened, cancel: (reason: string) => pipeline.cancelBackfillWindow(opened.id, reason) };
    const { applied: r } = await withWatermarkWindow(client, window, {
      read: async () => {
        // every table of the sink: prefixes of different tables may overlap
        const expected = new Set<string>();
        const items = new Map<string, Set<string>>();
        for (const table of tables) {
          for await (const rows of copyChunks(client, table)) {
            for (const row of rows) {
              for (const e of planRow(sink, cfg, table.info, row).expectations) {
                expected.add(e.key);
                const item = e.kind === 'member' || e.kind === 'zmember' ? e.member : e.kind === 'field' ? e.field : e.kind === 'bit' ? e.offset : null;
                if (item === null) continue;
                let set = items.get(e.key);
                if (!set) items.set(e.key, (set = new Set()));
                set.add(item);
              }
            }
          }
        }
        const orphanKeys: string[] = [];
        const kept: string[] = [];
        for (const prefix of prefixList) {
          for await (const keys of scanPrefix(redis, prefix)) for (const k of keys) if (!isOwnKey(k)) (expected.has(k) ? kept : orphanKeys).push(k);
        }
        expected.clear();
        // keys of another Redis type are not this sink's: never delete them (nor look inside)
        const keys = await keysOfType(redis, [...new Set(orphanKeys)], type);
        const orphanItems: OrphanItem[] = [];
        if (kind !== null) {
          for (const key of await keysOfType(redis, [...new Set(kept)], type)) {
            const want = items.get(key) ?? new Set<string>();
            // SSCAN and the like may return an item twice
            const found = new Set<string>();
            for await (const item of itemsOf(redis, key, kind)) if (!want.has(item)) found.add(item);
            for (const item of found) orphanItems.push({ kind, key, item });
          }
        }
        result.candidates = keys.length + orphanItems.length;
        return { keys, orphanItems };
      },
      fill: ({ keys, orphanItems }) => pipeline.fillOrphanWindow(window.id, keys, orphanItems),
      failure: 'orphan sweep failed',
    });
    result.deleted = r.emitted;
    result.kept = r.skipped;
    result.state = 'done';
    return result;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The members, fields or set bits' offsets of one key (SSCAN, ZSCAN, HSCAN; a bitmap 64 KiB at a time). */
async function* itemsOf(redis: RedisClient, key: string, kind: OrphanItem['kind']): AsyncGenerator<string> {
  if (kind === 'bit') {
    const length = await redis.strlen(key);
    const step = 65_536;
    for (let start = 0; start < length; start += step) {
      const bytes = await redis.getrangeBuffer(key, start, start + step - 1);
      for (let i = 0; i < bytes.length; i++) {
        const b = bytes[i]!;
        if (b === 0) continue;
        // SETBIT numbers bits from the most significant bit of the first byte
        for (let bit = 0; bit < 8; bit++) if (b & (0x80 >> bit)) yield String((start + i) * 8 + bit);
      }
    }
    return;
  }
  let cursor = '0';
  do {
    const [next, flat] = kind === 'member' ? await redis.sscan(key, cursor, 'COUNT', 1000) : kind === 'zmember' ? await redis.zscan(key, cursor, 'COUNT', 1000) : await redis.hscan(key, cursor, 'COUNT', 1000);
    cursor = next;
    // SSCAN: members; ZSCAN: member, score, …; HSCAN: field, value, …
    const stride = kind === 'member' ? 1 : 2;
    for (let i = 0; i < flat.length; i += stride) yield flat[i]!;
  } while (cursor !== '0');
}
