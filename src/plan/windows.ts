import type { Change, TableInfo } from '../core/change.js';
import { rowsOf, type Rows, type Tuple } from '../core/tuple.js';
import { rowIdentity } from '../core/table-info.js';
import type { RedisCommand } from '../core/command.js';
import type { Lsn } from '../core/lsn.js';

/**
 * DBLog watermark windows, as the stream sees them. A window is registered before its low
 * watermark is written to the WAL; once the low watermark arrives in the stream, every row the
 * stream changes in the window's table is recorded as touched; the reader fills the window
 * (rows read after the low watermark, or candidate orphan keys) before writing the high
 * watermark; when the high watermark arrives the window closes and what was read is planned
 * at that point of the stream, minus what the stream touched in between: no row moves back.
 *
 *   registered ──lw seen──► open (tracking) ──hw seen──► closed (planned, then applied)
 *        │                      │
 *        └──────cancel──────────┴──► cancelled
 *
 * Pure: no I/O. Used by backfills (rows), failed-message retry (rows) and orphan sweeps (keys).
 *
 * Aggregate backfills (mode `aggregate`) close differently: a rows window cannot work for running
 * totals, since a snapshot read between two watermarks holds an unknown part of the changes the
 * stream applies as increments in between. Their read is one transaction that locks the table
 * against writers (SHARE), writes the message `ag:<id>` and reads the GROUP BY: the snapshot holds
 * exactly the table's transactions committed before it, and the message comes in the stream after
 * all of them and before any later one. The window closes there: the groups are set, and those
 * Redis holds but the read does not are removed. Which those are is read from the sink's group
 * registries after the low watermark's batch is applied (`opened`), plus the registries the sink
 * writes from the window's registration on (tracked like an orphan window's keys).
 */
export type WindowMode = 'rows' | 'orphans' | 'aggregate';

/** What an aggregate backfill read (filled before its message is committed). */
export interface AggregateFill {
  /** groups the read found */
  readonly groups: number;
  /** registry keys Redis held after the low watermark was applied */
  readonly registries: readonly string[];
  /** the commands that set the groups, given every registry to sweep (pure) */
  readonly build: (registries: ReadonlySet<string>) => RedisCommand[];
}

/** The window cannot close where its mark is (its sink was paused or resumed meanwhile): read again. */
export class WindowRetry extends Error {}

export interface WindowResult {
  emitted: number;
  skipped: number;
}

export interface Window {
  readonly id: string;
  readonly mode: WindowMode;
  readonly sink: string;
  readonly table: TableInfo | null;
  /** the low watermark was seen: changes are tracked */
  open: boolean;
  /** where the low watermark was seen (its transaction's commit): earlier transactions, replayed for a resumed sink, are not tracked */
  openedAt: Lsn | null;
  /** row identities (rows) or keys (orphans) the stream touched between the watermarks */
  readonly touched: Set<string>;
  rows: Rows | null;
  orphans: string[] | null;
  /** orphan windows: members, fields and bits no row accounts for, inside keys that rows do */
  orphanItems: OrphanItem[];
  aggregate: AggregateFill | null;
  extraCommands: RedisCommand[];
  readonly resolve: (r: WindowResult) => void;
  readonly reject: (err: Error) => void;
  /** aggregate: settles once the low watermark's batch is applied (or the window is cancelled) */
  opened: { resolve: () => void; reject: (err: Error) => void } | null;
}

export type WatermarkEvent =
  | { kind: 'opened'; window: Window }
  | { kind: 'closed'; window: Window }
  | { kind: 'ignored' };

export class Windows {
  private readonly windows = new Map<string, Window>();

  get size(): number {
    return this.windows.size;
  }

  register(id: string, mode: WindowMode, sink: string, table: TableInfo | null): Promise<WindowResult> {
    return new Promise<WindowResult>((resolve, reject) => {
      this.windows.set(id, { id, mode, sink, table, open: false, openedAt: null, touched: new Set(), rows: null, orphans: null, orphanItems: [], aggregate: null, extraCommands: [], resolve, reject, opened: null });
    });
  }

  /** An aggregate backfill's window: `opened` settles once its low watermark is applied, `applied` once its groups are. */
  registerAggregate(id: string, sink: string, table: TableInfo): { applied: Promise<WindowResult>; opened: Promise<void> } {
    const applied = this.register(id, 'aggregate', sink, table);
    const w = this.windows.get(id)!;
    const opened = new Promise<void>((resolve, reject) => {
      w.opened = { resolve, reject };
    });
    opened.catch(() => undefined); // a cancelled window rejects both; `applied` is the one awaited last
    return { applied, opened };
  }

  fillAggregate(id: string, fill: AggregateFill, extraCommands: RedisCommand[]): void {
    const w = this.windows.get(id);
    if (!w || w.mode !== 'aggregate') throw new Error(`aggregate window ${id} is not open`);
    w.aggregate = fill;
    w.extraCommands = extraCommands;
  }

  get(id: string): Window | undefined {
    return this.windows.get(id);
  }

  fillRows(id: string, rows: Rows | readonly Tuple[], extraCommands: RedisCommand[]): void {
    const w = this.windows.get(id);
    if (!w || w.mode !== 'rows') throw new Error(`backfill window ${id} is not open`);
    w.rows = Array.isArray(rows) ? rowsOf(rows) : (rows as Rows);
    w.extraCommands = extraCommands;
  }

  fillOrphans(id: string, keys: string[], items: OrphanItem[] = []): void {
    const w = this.windows.get(id);
    if (!w || w.mode !== 'orphans') throw new Error(`orphan window ${id} is not open`);
    w.orphans = keys;
    w.orphanItems = items;
  }

  cancel(id: string, reason: string): void {
    const w = this.windows.get(id);
    if (!w) return;
    this.windows.delete(id);
    w.opened?.reject(new Error(reason));
    w.reject(new Error(reason));
  }

  /** Cancels every window of a sink (deleted), or all of them (stopping). */
  cancelAll(reason: string, sink?: string): void {
    for (const w of [...this.windows.values()]) if (sink === undefined || w.sink === sink) this.cancel(w.id, reason);
  }

  /**
   * A watermark message from the stream: `lw:<id>` opens, `hw:<id>` closes (and removes) the
   * window. `at`: the commit position of the watermark's transaction (its own LSN when sent
   * outside a transaction).
   */
  onWatermark(text: string, at: Lsn): WatermarkEvent {
    const kind = text.slice(0, 3);
    const w = this.windows.get(text.slice(3));
    if (!w) return { kind: 'ignored' }; // another process's watermark, or one from before a restart
    if (kind === 'lw:') {
      w.open = true;
      w.openedAt ??= at;
      return { kind: 'opened', window: w };
    }
    if (kind === (w.mode === 'aggregate' ? 'ag:' : 'hw:')) {
      this.windows.delete(w.id);
      return { kind: 'closed', window: w };
    }
    return { kind: 'ignored' };
  }

  /**
   * Changes of a transaction committed at `commitLsn`: rows they touch are newer than any chunk
   * read in an open window, unless the transaction committed before the low watermark (a replay).
   */
  track(changes: readonly Change[], commitLsn: Lsn): void {
    if (this.windows.size === 0) return;
    for (const w of this.windows.values()) {
      if (!w.open || w.mode !== 'rows' || !w.table) continue;
      if (w.openedAt !== null && commitLsn <= w.openedAt) continue;
      const name = w.table.qualifiedName;
      for (const c of changes) {
        if (c.table.qualifiedName !== name) continue;
        w.touched.add(rowIdentity(c.table, c.row));
        if (c.oldRow) w.touched.add(rowIdentity(c.table, c.oldRow));
      }
    }
  }

  /**
   * Open orphan windows of a sink (the keys it writes while they are open are not orphans), and its
   * aggregate windows from their registration (the registries it writes must be swept too).
   */
  keyTrackers(sink: string): Set<string>[] | null {
    if (this.windows.size === 0) return null;
    let out: Set<string>[] | null = null;
    for (const w of this.windows.values()) if (w.sink === sink && ((w.mode === 'orphans' && w.open) || w.mode === 'aggregate')) (out ??= []).push(w.touched);
    return out;
  }

  /**
   * The touched sets of the sink's open orphan windows, for the items (members, fields, bits) its
   * commands write (`orphanItemIds`); aggregate windows track registry keys only.
   */
  itemTrackers(sink: string): Set<string>[] | null {
    if (this.windows.size === 0) return null;
    let out: Set<string>[] | null = null;
    for (const w of this.windows.values()) if (w.sink === sink && w.mode === 'orphans' && w.open) (out ??= []).push(w.touched);
    return out;
  }

  /** The chunk's rows the stream did not touch between the watermarks. */
  static freshRows(w: Window): { rows: Rows; skipped: number } {
    const all = w.rows;
    if (!all || !w.table) throw new Error('high watermark seen before the chunk was read');
    // the usual case: nothing touched, no identity to build for each row
    if (w.touched.size === 0) return { rows: all, skipped: 0 };
    const kept: number[] = [];
    for (let i = 0; i < all.length; i++) if (!w.touched.has(rowIdentity(w.table, all.row(i)))) kept.push(i);
    return { rows: { length: kept.length, row: (i) => all.row(kept[i]!) }, skipped: all.length - kept.length };
  }

  /** The candidate orphans the sink did not write between the watermarks. */
  static orphanKeys(w: Window): { keys: string[]; skipped: number } {
    if (!w.orphans) throw new Error('high watermark seen before the orphan keys were collected');
    const keys = w.orphans.filter((k) => !w.touched.has(k));
    return { keys, skipped: w.orphans.length - keys.length };
  }

  /**
   * The candidate orphan items the sink did not write between the watermarks (an item written,
   * or removed, by the stream meanwhile is the stream's: kept), as the commands that remove them.
   */
  static orphanItemCommands(w: Window): { commands: RedisCommand[]; skipped: number } {
    const commands: RedisCommand[] = [];
    for (const o of w.orphanItems) if (!w.touched.has(itemId(o.key, o.item))) commands.push(removeItemCommand(o));
    return { commands, skipped: w.orphanItems.length - commands.length };
  }
}

/** One item of a key that no row accounts for: a set member, a sorted-set (or geo) member, a hash field, a set bit. */
export interface OrphanItem {
  readonly kind: 'member' | 'zmember' | 'field' | 'bit';
  readonly key: string;
  /** the member, the field, or the bit's offset */
  readonly item: string;
}

function itemId(key: string, item: string): string {
  return `${key}\u0000${item}`;
}

function removeItemCommand(o: OrphanItem): RedisCommand {
  switch (o.kind) {
    case 'member':
      return ['SREM', o.key, o.item];
    case 'zmember':
      return ['ZREM', o.key, o.item];
    case 'field':
      return ['HDEL', o.key, o.item];
    case 'bit':
      return ['SETBIT', o.key, o.item, '0'];
  }
}

const ZADD_FLAGS = new Set(['NX', 'XX', 'GT', 'LT', 'CH', 'INCR']);

/**
 * The items a keyed sink's command writes or removes, as ids an orphan window tracks
 * (`key NUL item`): SADD/SREM members, ZADD/ZREM/GEOADD members, HSET/HDEL fields, SETBIT
 * offsets. Other commands (DEL, PEXPIRE, EVAL of the reverse index, which only removes) name none.
 */
export function orphanItemIds(cmd: RedisCommand): string[] {
  const name = cmd[0]?.toUpperCase();
  const key = cmd[1];
  if (key === undefined) return [];
  const args = cmd.slice(2);
  switch (name) {
    case 'SADD':
    case 'SREM':
    case 'ZREM':
    case 'HDEL':
      return args.map((m) => itemId(key, m));
    case 'SETBIT':
      return args[0] === undefined ? [] : [itemId(key, args[0])];
    case 'HSET':
      return args.filter((_a, i) => i % 2 === 0).map((f) => itemId(key, f));
    case 'ZADD': {
      const rest = args.filter((a) => !ZADD_FLAGS.has(a.toUpperCase()));
      return rest.filter((_a, i) => i % 2 === 1).map((m) => itemId(key, m));
    }
    case 'GEOADD': {
      const rest = args.filter((a) => !['NX', 'XX', 'CH'].includes(a.toUpperCase()));
      return rest.filter((_a, i) => i % 3 === 2).map((m) => itemId(key, m));
    }
    default:
      return [];
  }
}
