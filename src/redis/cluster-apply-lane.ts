import type { Cluster, Redis } from 'ioredis';
import type { Logger } from '../util/log.js';
import type { RedisCommand } from '../core/command.js';
import { commandKeys } from '../core/command.js';
import { isCovered, parsePosition, type Position } from '../core/position.js';
import { RetryingLane, type ApplyPart, type DataLoss, type Lane, type LoadedSink } from './apply-lane.js';
import type { CommandOrigin, RejectedCommand } from '../core/command.js';
import { execGroup } from './multi-exec.js';
import { slotOf, slotTag } from './slot-tags.js';
import { isOwnKey, parseSlotKey, SLOT_KEY_PATTERN, slotBatchMarkerKey, slotPositionKey } from '../core/keyspace.js';

interface SlotGroup {
  commands: RedisCommand[];
  origins: (CommandOrigin | null)[];
}

/**
 * Applies batches to a Redis Cluster. MULTI cannot span hash slots, so a batch is split by slot
 * and each slot's commands are one MULTI … EXEC, in the batch's order, holding that slot's own
 * position keys (`sluice:pos:<sink>:{tag}`) and batch marker (`sluice:batch:<lane>:{tag}`),
 * placed in the slot by a hash tag. A transaction is thus atomic per slot; keys that share a
 * hash tag (`order:{user42}:…`) share a slot and are atomic together.
 *
 * Replay after a crash compares per slot: a slot whose position covers a change skips it. Data
 * loss is noticed per slot (its marker is not the last batch written there). MOVED and ASK
 * redirections during a resharding are followed by ioredis; a slot that refuses a MULTI while it
 * migrates (TRYAGAIN, CROSSSLOT on a half-moved slot) is retried after the marker check.
 */
export class ClusterApplyLane extends RetryingLane implements Lane {
  private readonly markers = new Map<number, string | null>();
  private readonly slotPositions = new Map<string, Map<number, Position>>();

  readonly behindCheck = false;
  private loaded = false;

  constructor(
    name: string,
    readonly redis: Cluster,
    log: Logger,
    private readonly onDataLoss: (loss: DataLoss) => void = () => undefined,
  ) {
    super(name, log);
  }

  async load(sinks: readonly string[]): Promise<Map<string, LoadedSink>> {
    const known = new Set<string>();
    for (const node of this.redis.nodes('master')) {
      for (const key of await scanAll(node, SLOT_KEY_PATTERN)) {
        const k = parseSlotKey(key);
        if (!k) continue;
        const slot = slotOf(key);
        const value = await node.get(key);
        if (value === null) continue;
        if (k.kind === 'batch' && k.name === this.name) {
          if (!this.loaded) this.markers.set(slot, value);
        } else if (k.kind === 'pos' && sinks.includes(k.name)) {
          const map = this.slotPositions.get(k.name) ?? new Map<number, Position>();
          map.set(slot, parsePosition(value));
          this.slotPositions.set(k.name, map);
          known.add(k.name);
        }
      }
    }
    this.loaded = true;
    // the pipeline skips nothing by itself: replays are filtered per slot here
    return new Map(sinks.map((s) => [s, { skip: null, known: known.has(s) }]));
  }

  /** A sink's positions per hash slot as Redis held them when loaded (the tail probe's bounds). */
  loadedPositions(sink: string): ReadonlyMap<number, Position> {
    return this.slotPositions.get(sink) ?? new Map<number, Position>();
  }

  async apply(part: ApplyPart): Promise<RejectedCommand[]> {
    for (const prefix of part.unlinkPrefixes) {
      let removed = 0;
      const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
      for (const node of this.redis.nodes('master')) {
        for (const key of await scanAll(node, pattern)) if (!isOwnKey(key)) removed += await this.redis.unlink(key);
      }
      this.log.info({ redis: this.name, prefix, removed }, 'TRUNCATE applied: keys removed');
    }
    const { groups, rejected } = this.group(part);
    const perSlot = await Promise.all([...groups].map(([slot, g]) => this.applySlot(slot, g, part)));
    return rejected.concat(...perSlot);
  }

  async forget(sink: string): Promise<void> {
    this.slotPositions.delete(sink);
    for (const node of this.redis.nodes('master')) {
      for (const key of await scanAll(node, SLOT_KEY_PATTERN)) {
        const k = parseSlotKey(key);
        if (k && k.kind === 'pos' && k.name === sink) await node.del(key);
      }
    }
  }

  /** Splits a part by hash slot, dropping what a slot already has (replay) and refusing cross-slot commands. */
  private group(part: ApplyPart): { groups: Map<number, SlotGroup>; rejected: RejectedCommand[] } {
    const groups = new Map<number, SlotGroup>();
    const rejected: RejectedCommand[] = [];
    for (let i = 0; i < part.commands.length; i++) {
      const cmd = part.commands[i]!;
      const origin = part.origins[i] ?? null;
      const keys = commandKeys(cmd);
      const slots = new Set((keys.length > 0 ? keys : [cmd[1] ?? '']).map(slotOf));
      if (slots.size > 1) {
        if (origin) rejected.push({ origin, error: `CROSSSLOT: the command's keys (${keys.join(', ')}) are in different hash slots; give them a common hash tag, e.g. {user_id}` });
        continue;
      }
      const slot = [...slots][0]!;
      if (origin && isCovered(this.slotPositions.get(origin.sink)?.get(slot) ?? null, origin.meta.commitLsn, origin.change.idx)) continue;
      let g = groups.get(slot);
      if (!g) groups.set(slot, (g = { commands: [], origins: [] }));
      g.commands.push(cmd);
      g.origins.push(origin);
    }
    return { groups, rejected };
  }

  private async applySlot(slot: number, g: SlotGroup, part: ApplyPart): Promise<RejectedCommand[]> {
    const tag = slotTag(slot);
    const markerKey = slotBatchMarkerKey(this.name, tag);
    const rejected = await this.applyExactlyOnce(this.redis, markerKey, part.batchId, { slot }, async () => {
      const { before, rejected } = await execGroup(this.redis, {
        markerKey,
        batchId: part.batchId,
        commands: g.commands,
        origins: g.origins,
        positions: part.positions.map(([sink, pos]) => [slotPositionKey(sink, tag), pos] as const),
      });
      const expected = this.markers.get(slot) ?? null;
      if (before !== expected) {
        this.log.error({ redis: this.name, slot, expected, found: before }, 'Redis lost writes in a hash slot (failover to a replica that lacked them, restart without persistence, or FLUSHALL)');
        this.onDataLoss({ lane: this.name, found: before });
      }
      return rejected;
    });
    this.markers.set(slot, part.batchId);
    return rejected;
  }
}

async function scanAll(node: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    out.push(...keys);
  } while (cursor !== '0');
  return out;
}
