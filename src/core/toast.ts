import type { Change } from './change.js';

/**
 * Fills unchanged TOASTed values (sent as "unchanged", no value) from the old row when Postgres
 * sent the whole old row (REPLICA IDENTITY FULL). Otherwise they stay undefined, and whoever
 * needs them must fetch them: they are never written as a placeholder.
 */
export function fillUnchangedToast(change: Change): Change {
  if (change.action !== 'update') return change;
  const row = change.row;
  let missing = false;
  for (let i = 0; i < row.length; i++) {
    if (row[i] === undefined) {
      missing = true;
      break;
    }
  }
  if (!missing || change.oldKind !== 'O' || !change.oldRow) return change;
  const old = change.oldRow;
  return { ...change, row: row.map((v, i) => (v === undefined ? old[i] : v)) };
}

export function hasUnchangedToast(change: Change): boolean {
  return change.row.some((v) => v === undefined);
}
