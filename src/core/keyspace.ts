/**
 * Every name Sluice gives a Redis key of its own, and the watermark messages it writes to the
 * WAL, built in one place. Pure: no I/O, nothing outside core/.
 *
 * Sluice's own keys all start with `sluice:<kind>:` and are never treated as row data: a
 * TRUNCATE never removes them, verify and repair never count or delete them (isOwnKey).
 *
 *   sluice:pos:<sink>              a sink's applied position, written in every batch's MULTI
 *   sluice:batch:<instance>:<redis>  the id of the last batch an instance applied on one of its
 *                                    Redis connections (instance: see instanceIdentity)
 *   sluice:pos:<sink>:{tag}        on Redis Cluster, the same per hash slot; `tag` is a hash
 *   sluice:batch:<instance>:<redis>:{tag}  tag that places the key in the slot it describes
 *   sluice:owner:<sink>            the instance that owns the sink's name on this Redis
 *   sluice:failed:<sink>           hash of a sink's failed messages (field: message id)
 *   sluice:backfill:<sink>         hash of a sink's backfill progress (field: table)
 *   sluice:idx:<sink>              a keyed sink's reverse index (see sinks/reverse-index.ts)
 *   sluice:applied:<sink>          a sink's applied position, for read-your-writes clients; also the
 *                                    channel its progress is published on
 *   sluice:sink:<sink>             a sink's definition (templates, tables, primary keys) for clients
 *
 * Every key above but the batch marker is per sink; sink names are unique per Redis because each
 * name is owned by one instance (`sluice:owner:<sink>`, runtime/sink-owners.ts). The batch marker
 * belongs to the instance: several instances may write to one Redis under the same connection
 * name, and each must compare only its own batches. Before instances had identities the marker
 * was `sluice:batch:<redis>` (legacyBatchMarkerKey); the first start of this version renames it.
 *   sluice:agg:<sink>:{tag}        an aggregate sink's groups in one hash slot: a hash from each
 *                                    group to its row count (and exact sum: sinks/aggregate-sink.ts),
 *                                    in the slot of the group's key
 *
 * A key written with a user's default template (`sluice:{table}:{pk}`) is data, not one of these.
 */

/** The prefixes of Sluice's own keys. */
export const OWN_KEY_PREFIXES: readonly string[] = ['sluice:pos:', 'sluice:batch:', 'sluice:failed:', 'sluice:backfill:', 'sluice:idx:', 'sluice:applied:', 'sluice:sink:', 'sluice:agg:', 'sluice:owner:'];

/** Keys Sluice keeps for itself: never removed by a TRUNCATE or counted as data. */
export function isOwnKey(key: string): boolean {
  return OWN_KEY_PREFIXES.some((p) => key.startsWith(p));
}

/** A sink's applied position (`<commit LSN>` or `<commit LSN>:<idx>`), standalone and Sentinel. */
export function positionKey(sink: string): string {
  return `sluice:pos:${sink}`;
}

/**
 * What tells Sluice instances apart on one Redis: `instance:` from the config, else
 * `<slot>@<system identifier>`. The slot name is unique within one Postgres cluster, and the
 * system identifier (pg_control_system(), fixed at initdb and shared by physical replicas, so it
 * survives a failover) tells Postgres clusters apart: two clusters that each have a slot named
 * `sluice` are two instances. The database name would not do: two clusters often share it.
 */
export function instanceIdentity(slot: string, systemIdentifier: string): string {
  return `${slot}@${systemIdentifier}`;
}

/** An `instance:` name Sluice accepts: no `:` (keys are split on it), no glob or hash-tag characters. */
export const INSTANCE_NAME_RE = /^[A-Za-z0-9_.@-]{1,100}$/;

/** The name a lane's markers carry: the instance, then the Redis connection's name. */
export function markerName(instance: string, lane: string): string {
  return `${instance}:${lane}`;
}

/** The id of the last batch an instance applied on one of its Redis connections (`lane`: the connection's name). */
export function batchMarkerKey(instance: string, lane: string): string {
  return `sluice:batch:${markerName(instance, lane)}`;
}

/** The batch marker of versions before instance identities: shared by every instance with the same connection name. */
export function legacyBatchMarkerKey(lane: string): string {
  return `sluice:batch:${lane}`;
}

/** A sink's position in one hash slot of a Redis Cluster; `tag` hashes to that slot. */
export function slotPositionKey(sink: string, tag: string): string {
  return `sluice:pos:${sink}:{${tag}}`;
}

/** An instance's batch marker for a Redis Cluster connection in one hash slot; `tag` hashes to that slot. */
export function slotBatchMarkerKey(instance: string, lane: string, tag: string): string {
  return `sluice:batch:${markerName(instance, lane)}:{${tag}}`;
}

/** The Cluster batch marker of versions before instance identities (see legacyBatchMarkerKey). */
export function legacySlotBatchMarkerKey(lane: string, tag: string): string {
  return `sluice:batch:${lane}:{${tag}}`;
}

/** SCAN MATCH pattern that finds every slot-tagged key (a superset: parse each with parseSlotKey). */
export const SLOT_KEY_PATTERN = 'sluice:*:*{*}';

export interface SlotKey {
  readonly kind: 'pos' | 'batch';
  /** the sink (pos), or the marker's name (batch: markerName, or a legacy marker's connection name) */
  readonly name: string;
  readonly tag: string;
}

/** slotPositionKey / slotBatchMarkerKey back to their parts; null for any other key. */
export function parseSlotKey(key: string): SlotKey | null {
  const m = /^sluice:(pos|batch):(.+):\{([0-9a-z]+)\}$/.exec(key);
  if (!m) return null;
  return { kind: m[1] as 'pos' | 'batch', name: m[2]!, tag: m[3]! };
}

/** A sink's failed messages: a hash, field = message id (`<commit LSN>:<idx>`). */
export function failedKey(sink: string): string {
  return `sluice:failed:${sink}`;
}

/** A sink's backfill progress: a hash, field = table (`schema.table`), value = JSON record. */
export function backfillKey(sink: string): string {
  return `sluice:backfill:${sink}`;
}

/** A keyed sink's reverse index: a hash from a row's identity to the place last written for it. */
export function reverseIndexKey(sink: string): string {
  return `sluice:idx:${sink}`;
}

/**
 * A sink's applied position for clients (`sluice/client` waitFor): written after each batch is
 * acknowledged, a lower bound of what Redis holds for the sink (on Cluster: every slot). The same
 * name is the pub/sub channel the position is published on, so waiting is push, not polling.
 */
export function appliedKey(sink: string): string {
  return `sluice:applied:${sink}`;
}

/**
 * The channel clients publish an LSN on when they wait for it and the sinks are not there yet:
 * Sluice writes a fence in Postgres, so the wait does not depend on the database being busy.
 */
export const FENCE_REQUEST_CHANNEL = 'sluice:fence-request';

/**
 * The instance that owns a sink's name on this Redis (its value: the instance identity). Claimed
 * with SET NX when the sink starts or is created, removed when the sink is deleted.
 */
export function sinkOwnerKey(sink: string): string {
  return `sluice:owner:${sink}`;
}

/** Why a sink name another instance owns on a Redis is refused, and what to do about it. */
export function sinkOwnedElsewhere(sink: string, redis: string, owner: string, instance: string): string {
  return `sink "${sink}" on Redis "${redis}" belongs to another Sluice instance ("${owner}"), not to this one ("${instance}"): give this sink another name; if "${owner}" no longer runs it, delete the key ${sinkOwnerKey(sink)}; if "${owner}" was this instance before its Postgres changed, set instance: ${owner} in sluice.yaml`;
}

/** A sink's definition for clients (`keyFor`): JSON with its type, tables, templates and primary keys. */
export function sinkDefinitionKey(sink: string): string {
  return `sluice:sink:${sink}`;
}

/**
 * An aggregate sink's registry of groups in one hash slot (`tag` hashes to the slot of the
 * groups' keys): field = the group (sinks/reverse-index.ts encodeEntry of key and member), value =
 * `<row count>` or `<row count> <exact sum>`. Written by the same Lua script as the group.
 */
export function aggregateRegistryKey(sink: string, tag: string): string {
  return `sluice:agg:${sink}:{${tag}}`;
}

/** SCAN MATCH pattern of every registry key of an aggregate sink (sink names hold no glob characters). */
export function aggregateRegistryPattern(sink: string): string {
  return `sluice:agg:${sink}:{*}`;
}

/** Is `key` one of `sink`'s aggregate registry keys? */
export function isAggregateRegistryKey(sink: string, key: string): boolean {
  return key.startsWith(`sluice:agg:${sink}:{`) && key.endsWith('}');
}

/** Pattern of every key Sluice may touch by default (own keys and default templates): the ACL check's. */
export const SLUICE_KEY_PATTERN = 'sluice:*';

/** The key `sluice check` names when it probes the Redis user's ACL (never written for real). */
export const ACL_CHECK_KEY = 'sluice:check';

// ---- watermarks --------------------------------------------------------------------------

/** Prefix of Sluice's logical decoding messages (`pg_logical_emit_message(true, prefix, content)`). */
export const WATERMARK_PREFIX = 'sluice';

export type WatermarkKind = 'low' | 'high';

/**
 * The message an aggregate backfill writes in the same transaction as its GROUP BY read
 * (backfill/aggregate-backfill.ts): the stream sets the groups where it meets it.
 */
export function aggregateMarkContent(windowId: string): string {
  return `ag:${windowId}`;
}

/** A watermark message's content: `lw:<window id>` or `hw:<window id>`. */
export function watermarkContent(kind: WatermarkKind, windowId: string): string {
  return `${kind === 'low' ? 'lw' : 'hw'}:${windowId}`;
}

/** A watermark message's content back to its kind and window id; null for anything else. */
export function parseWatermarkContent(content: string): { kind: WatermarkKind; windowId: string } | null {
  const head = content.slice(0, 3);
  if (head === 'lw:') return { kind: 'low', windowId: content.slice(3) };
  if (head === 'hw:') return { kind: 'high', windowId: content.slice(3) };
  return null;
}
