import { formatLsn, parseLsn, type Lsn } from './lsn.js';

/**
 * A sink's applied position, as stored in `sluice:pos:<sink>`:
 * - "16/B374D848": everything that committed before this LSN is applied (the end LSN of the
 *   last transaction applied, or the server position of a keepalive received while idle);
 * - "16/B3740000:19999": a transaction too large to apply at once, committed at this LSN, is
 *   applied up to and including change 19999.
 * Because idle keepalives are written too, a position is never behind the slot's confirmed
 * position unless Redis lost writes.
 */
export interface Position {
  readonly lsn: Lsn;
  /** null: everything before `lsn`; a number: the transaction at `lsn` through this change */
  readonly idx: number | null;
}

export function formatPosition(p: Position): string {
  return p.idx === null ? formatLsn(p.lsn) : `${formatLsn(p.lsn)}:${p.idx}`;
}

export function parsePosition(text: string): Position {
  const colon = text.indexOf(':');
  if (colon === -1) return { lsn: parseLsn(text), idx: null };
  const idx = Number(text.slice(colon + 1));
  if (!Number.isInteger(idx) || idx < 0) throw new Error(`not a position: ${JSON.stringify(text)}`);
  return { lsn: parseLsn(text.slice(0, colon)), idx };
}

/** Orders positions: "everything before L" sorts just before the changes of a transaction at L. */
export function comparePositions(a: Position, b: Position): number {
  if (a.lsn !== b.lsn) return a.lsn < b.lsn ? -1 : 1;
  return (a.idx ?? -1) - (b.idx ?? -1);
}

/** Is change `idx` of the transaction committed at `commitLsn` already covered by `pos`? */
export function isCovered(pos: Position | null, commitLsn: Lsn, idx: number): boolean {
  // comparePositions({ lsn: commitLsn, idx }, pos) <= 0, without a Position per change
  if (pos === null) return false;
  if (pos.lsn !== commitLsn) return commitLsn < pos.lsn;
  return idx <= (pos.idx ?? -1);
}

/**
 * What a Redis Cluster held of one sink's positions when its lane loaded them: the sink's own
 * position (`sluice:pos:<sink>`, every slot has what it covers) and the positions of hash slots
 * whose MULTI wrote one past it. A change is a replay if either covers it.
 */
export interface LoadedPositions {
  readonly floor: Position | null;
  readonly slots: ReadonlyMap<number, Position>;
}

/** Whether change `idx` of the transaction committed at `commitLsn`, in hash slot `slot`, is covered by what was loaded. */
export function loadedCovers(loaded: LoadedPositions, slot: number, commitLsn: Lsn, idx: number): boolean {
  return isCovered(loaded.floor, commitLsn, idx) || isCovered(loaded.slots.get(slot) ?? null, commitLsn, idx);
}

/** The furthest position loaded (null: none). */
export function loadedMax(loaded: LoadedPositions): Position | null {
  let max = loaded.floor;
  for (const p of loaded.slots.values()) if (max === null || comparePositions(p, max) > 0) max = p;
  return max;
}
