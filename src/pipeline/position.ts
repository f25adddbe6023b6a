import { formatLsn, parseLsn, type Lsn } from '../pg/lsn.js';

/**
 * A sink's applied position, as stored in `sluice:pos:<sink>`: the commit LSN of the last
 * transaction applied whole ("0/16B3748"), or, while a transaction too large to apply at once
 * is being applied in chunks, its commit LSN and the index of its last applied change
 * ("0/16B3748:99999").
 */
export interface Position {
  readonly lsn: Lsn;
  /** null: the whole transaction */
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

/** Was change `idx` of the transaction committed at `lsn` applied at or before `pos`? */
export function isCovered(pos: Position | null, lsn: Lsn, idx: number): boolean {
  if (pos === null) return false;
  if (lsn !== pos.lsn) return lsn < pos.lsn;
  return pos.idx === null || idx <= pos.idx;
}
