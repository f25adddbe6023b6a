import type { Change } from '../core/change.js';
import { MessageError, type TemplateCache } from '../core/template.js';
import { checkKey } from './sink.js';

/**
 * The key (or member) the row had before an update, when it differs from the new one.
 * Postgres sends the old row on update only when the replica identity columns changed
 * ('K') or the table has REPLICA IDENTITY FULL ('O'); with any other old values unknown the
 * old key can only be rendered when the template reads identity columns alone.
 */
export function oldKeyIfMoved(template: TemplateCache, change: Change, newKey: string): string | null {
  if (change.action !== 'update' || !change.oldRow) return null;
  let old: string;
  try {
    // a key that fails the checks (empty, too long) was never written: nothing to remove
    old = checkKey(template.render(change.table, change.oldRow));
  } catch {
    return null;
  }
  return old === newKey ? null : old;
}

/**
 * Renders a key or channel template for a change. A delete carries only the replica identity
 * columns (unless the table is REPLICA IDENTITY FULL): when the template reads another column,
 * the failure says so and what fixes it.
 */
export function renderFor(template: TemplateCache, change: Change, what: string): string {
  try {
    return template.render(change.table, change.row);
  } catch (err) {
    if (err instanceof MessageError && change.action === 'delete' && change.oldKind !== 'O') {
      const hint = `; a delete carries only the replica identity columns, so a ${what} template that reads other columns needs REPLICA IDENTITY FULL on ${change.table.qualifiedName}`;
      throw new MessageError(err.message + hint, err.withoutValues + hint);
    }
    throw err;
  }
}
