import { formatLsn, parseLsn, type Lsn } from './lsn.js';

/*
 * A message's id: the commit LSN of its transaction and its index in that transaction.
 *
 * - In the API (failed messages, recent deliveries, cursors) it is written `0-16B3748-0`: the
 *   LSN's two hex halves and the index, separated by `-`, so that it can be put in a URL path
 *   as it is listed (`…/messages/0-16B3748-0/retry`).
 * - The envelope's `metadata.idempotency_key` and the field of the failed-message hash
 *   (`sluice:failed:<sink>`) keep Postgres's notation, `0/16B3748:0`: consumers already
 *   deduplicate on it, and hashes written by earlier versions stay readable as they are.
 *
 * Both forms are accepted wherever an id is read.
 */

export interface MessagePosition {
  readonly lsn: Lsn;
  readonly idx: number;
}

const API_ID = /^([0-9A-Fa-f]{1,8})-([0-9A-Fa-f]{1,8})-(\d{1,9})$/;
const STORED_ID = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8}):(\d{1,9})$/;

/** The URL-safe id the API lists: `0-16B3748-0`. */
export function messageId(lsn: Lsn, idx: number): string {
  return `${formatLsn(lsn).replace('/', '-')}-${idx}`;
}

/** The idempotency key, also the failed-message hash's field: `0/16B3748:0`. */
export function storedMessageId(lsn: Lsn, idx: number): string {
  return `${formatLsn(lsn)}:${idx}`;
}

/** Either form (`0-16B3748-0` or `0/16B3748:0`) → its position; null when it is neither. */
export function parseMessageId(id: string): MessagePosition | null {
  const m = API_ID.exec(id) ?? STORED_ID.exec(id);
  if (!m) return null;
  return { lsn: parseLsn(`${m[1]!}/${m[2]!}`), idx: Number(m[3]) };
}

/** Either form → the API's form; the text as it is when it is no message id. */
export function apiMessageId(id: string): string {
  const p = parseMessageId(id);
  return p === null ? id : messageId(p.lsn, p.idx);
}
