import type { CommandOrigin, RedisCommand, RejectedCommand } from '../core/command.js';
import { commandKeys } from '../core/command.js';
import { checkMultiReplies, MultiAborted, type GroupResult, type GroupWrite } from './multi-exec.js';
import type { Reply } from './resp-connection.js';

/*
 * The pure parts of the Cluster apply lane: a batch split by hash slot, the slots grouped by the
 * master that serves them, one pre-encoded write per master carrying each of its slots' MULTI …
 * EXEC, and that write's replies checked slot by slot.
 */

/** One hash slot's share of a batch, in the batch's order. */
export interface SlotGroup {
  readonly commands: RedisCommand[];
  readonly origins: (CommandOrigin | null)[];
}

/** What became of one slot's MULTI … EXEC. */
export type MultiOutcome =
  | { readonly kind: 'applied'; readonly result: GroupResult }
  /** refused before it ran (MultiAborted): nothing applied, send again as is */
  | { readonly kind: 'refused'; readonly error: string }
  /** may or may not have run (lost connection, refused bookkeeping, a reply not understood): check the marker */
  | { readonly kind: 'unknown'; readonly error: string };

/**
 * A batch laid out by hash slot without an object per slot: the kept commands' indices sorted by
 * slot (stable: in the batch's order within a slot) and each slot's range of them. A command whose
 * keys lie in different slots is refused (CROSSSLOT: its message fails; a bookkeeping one is
 * dropped, as no Cluster can run it). `covered(origin, slot)` says the slot already holds that
 * change (a replay after a restart): it is left out.
 *
 * The lane owns one and lays out one batch at a time: its arrays (16,384 entries per slot table)
 * are kept from batch to batch, so a batch costs no allocation per slot or command.
 */
export class SlotLayout {
  /** the slots the batch touches, in the order they first appear */
  slots: number[] = [];
  /** kept command indices, slot by slot */
  order = new Int32Array(256);
  /** per slot: where its commands start in `order`, and how many (0: not in the batch) */
  readonly start = new Int32Array(16384);
  readonly count = new Int32Array(16384);
  rejected: RejectedCommand[] = [];
  private slotOf = new Int32Array(256);

  /** `covered`: null when no change can be (nothing loaded to compare with) */
  layout(commands: readonly RedisCommand[], origins: readonly (CommandOrigin | null)[], covered: ((origin: CommandOrigin, slot: number) => boolean) | null): void {
    const { count, start } = this;
    for (const slot of this.slots) count[slot] = 0;
    this.slots = [];
    this.rejected = [];
    const n = commands.length;
    if (this.slotOf.length < n) {
      this.slotOf = new Int32Array(Math.max(n, 2 * this.slotOf.length));
      this.order = new Int32Array(this.slotOf.length);
    }
    const slotOf = this.slotOf;
    for (let i = 0; i < n; i++) {
      const cmd = commands[i]!;
      const origin = origins[i] ?? null;
      slotOf[i] = -1;
      let slot: number;
      if (keysOf(cmd[0]) === 'first') {
        slot = keySlot(cmd[1] ?? '');
      } else {
        const keys = commandKeys(cmd);
        slot = keySlot(keys[0] ?? cmd[1] ?? '');
        let cross = false;
        for (let k = 1; k < keys.length; k++) if (keySlot(keys[k]!) !== slot) cross = true;
        if (cross) {
          if (origin) this.rejected.push({ origin, error: `CROSSSLOT: the command's keys (${keys.join(', ')}) are in different hash slots; give them a common hash tag, e.g. {user_id}` });
          continue;
        }
      }
      if (origin && covered !== null && covered(origin, slot)) continue;
      slotOf[i] = slot;
      const c = count[slot]!;
      count[slot] = c + 1;
      if (c === 0) this.slots.push(slot);
    }
    // each slot's range, then the indices into it (start is the running end while filling)
    let pos = 0;
    for (const slot of this.slots) {
      start[slot] = pos;
      pos += count[slot]!;
    }
    const order = this.order;
    for (let i = 0; i < n; i++) {
      const slot = slotOf[i]!;
      if (slot >= 0) order[start[slot]!++] = i;
    }
    for (const slot of this.slots) start[slot] = start[slot]! - count[slot]!;
  }

  /** A slot's commands and origins as arrays (for its MULTI, or to report them). */
  group(slot: number, commands: readonly RedisCommand[], origins: readonly (CommandOrigin | null)[]): SlotGroup {
    const from = this.start[slot]!;
    const n = this.count[slot]!;
    const g: SlotGroup = { commands: new Array<RedisCommand>(n), origins: new Array<CommandOrigin | null>(n) };
    for (let k = 0; k < n; k++) {
      const i = this.order[from + k]!;
      g.commands[k] = commands[i]!;
      g.origins[k] = origins[i] ?? null;
    }
    return g;
  }
}

/** Command name → whether its key is its first argument (most) or commandKeys must say (EVAL, PUBLISH…); names are few. */
const keyKinds = new Map<string, 'first' | 'other'>();
function keysOf(name: string | undefined): 'first' | 'other' {
  if (name === undefined) return 'other';
  let kind = keyKinds.get(name);
  if (kind === undefined) {
    const probe = commandKeys([name, 'k']);
    kind = probe.length === 1 && probe[0] === 'k' ? 'first' : 'other';
    if (keyKinds.size < 1000) keyKinds.set(name, kind);
  }
  return kind;
}

/** CRC16/XMODEM, the hash of Redis Cluster's key slots */
const CRC16 = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let b = 0; b < 8; b++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  CRC16[i] = c;
}

/**
 * The hash slot of a key, as Redis computes it (keyHashSlot in cluster.c): the CRC16 of the part
 * between the first `{` and the first `}` after it when that part is not empty, else of the whole
 * key, over its UTF-8 bytes. Written here rather than taken from cluster-key-slot (`slotOf`)
 * because that one builds an array of the key's bytes per call (garbage per command on the
 * Cluster lane) and, after an empty `{}`, goes on looking for a later tag where Redis hashes the
 * whole key (`{}{a}`).
 */
export function keySlot(key: string): number {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) > 127) return bytesSlot(Buffer.from(key, 'utf8'));
  let from = 0;
  let to = key.length;
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) {
      from = open + 1;
      to = close;
    }
  }
  let crc = 0;
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ CRC16[((crc >> 8) ^ key.charCodeAt(i)) & 0xff]!;
  return crc & 16383;
}

function bytesSlot(key: Buffer): number {
  let from = 0;
  let to = key.length;
  const open = key.indexOf(123); // '{'
  if (open >= 0) {
    const close = key.indexOf(125, open + 1); // '}'
    if (close > open + 1) {
      from = open + 1;
      to = close;
    }
  }
  let crc = 0;
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ CRC16[((crc >> 8) ^ key[i]!) & 0xff]!;
  return crc & 16383;
}

/**
 * Groups slots by the node that serves them (`owner`: the slot map's master, "host:port"), in
 * the order given; slots no node serves (the map is being refreshed) are returned apart.
 */
export function slotsByNode(slots: Iterable<number>, owner: (slot: number) => string | undefined): { byNode: Map<string, number[]>; unowned: number[] } {
  const byNode = new Map<string, number[]>();
  const unowned: number[] = [];
  // a Cluster has a few masters: the last one's list is tried before the map
  let lastNode: string | undefined;
  let lastList: number[] = unowned;
  for (const slot of slots) {
    const node = owner(slot);
    if (node === undefined) {
      unowned.push(slot);
      continue;
    }
    if (node !== lastNode) {
      lastNode = node;
      const list = byNode.get(node);
      if (list) lastList = list;
      else byNode.set(node, (lastList = []));
    }
    lastList.push(slot);
  }
  return { byNode, unowned };
}

/** One slot's MULTI … EXEC write (the lane's MULTI slots). */
export interface SlotWrite extends GroupWrite {
  readonly slot: number;
}

/** Checks one group's MULTI … EXEC replies from `replies[offset]`. */
export function checkMulti(replies: readonly Reply[], offset: number, w: GroupWrite): MultiOutcome {
  try {
    return { kind: 'applied', result: checkMultiReplies(replies, offset, w) };
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    return err instanceof MultiAborted ? { kind: 'refused', error } : { kind: 'unknown', error };
  }
}

/**
 * What a refusal asks for. MOVED: the slot map is stale (resharding done, failover): refresh it
 * and send again at once. ASK / TRYAGAIN: the slot is migrating right now and its keys are split
 * between two nodes; a MULTI of several keys cannot run on either until the move ends, so wait a
 * little and send again. Anything else (CLUSTERDOWN, OOM, READONLY…): back off and retry.
 */
export function refusalKind(error: string): 'moved' | 'migrating' | 'other' {
  if (/\bMOVED \d+ /.test(error)) return 'moved';
  if (/\bASK \d+ |\bTRYAGAIN\b/.test(error)) return 'migrating';
  return 'other';
}

/** Does this server (its `INFO server` text) have `SET key value GET`, Redis 6.2 or later? Valkey reports redis_version 7.2.4. */
export function hasSetGet(info: string): boolean {
  const m = /^redis_version:(\d+)\.(\d+)/m.exec(info);
  if (!m) return false;
  const major = Number(m[1]);
  return major > 6 || (major === 6 && Number(m[2]) >= 2);
}

/** What one attempt of a batch came to, over its masters. */
export interface Attempt {
  refresh: boolean;
  wait: boolean;
  firstError: string | null;
  /** MULTI slots whose reply was lost: their marker is checked before they are sent again */
  readonly uncertain: number[];
  /** slots applied */
  applied: number;
}

export function newAttempt(): Attempt {
  return { refresh: false, wait: false, firstError: null, uncertain: [], applied: 0 };
}
