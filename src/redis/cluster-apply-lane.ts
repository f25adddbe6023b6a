import type { Cluster } from 'ioredis';
import { scanAll } from './scan-keys.js';
import type { Logger } from '../util/log.js';
import { isCovered, parsePosition, type Position } from '../core/position.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';
import { RetryingLane, unsureOf, type ApplyOutcome, type ApplyPart, type DataLoss, type Lane, type LoadedSink, type UnsureCommand } from './apply-lane.js';
import type { RejectedCommand } from '../core/command.js';
import type { GroupWrite } from './multi-exec.js';
import { RespConnection, type RespEndpoint } from './resp-connection.js';
import { checkMultis, encodeMultis, groupBySlot, hasSetGet, refusalKind, slotsByNode, type MultiOutcome, type SlotGroup } from './cluster-batch.js';
import { slotOf, slotTag } from './slot-tags.js';
import { isOwnKey, markerName, parseSlotKey, SLOT_KEY_PATTERN, slotBatchMarkerKey, slotPositionKey } from '../core/keyspace.js';

/**
 * Applies batches to a Redis Cluster. MULTI cannot span hash slots, so a batch is split by slot
 * and each slot's commands are one MULTI … EXEC, in the batch's order, holding that slot's own
 * position keys (`sluice:pos:<sink>:{tag}`) and batch marker (`sluice:batch:<instance>:<lane>:{tag}`),
 * placed in the slot by a hash tag. A transaction is thus atomic per slot; keys that share a
 * hash tag (`order:{user42}:…`) share a slot and are atomic together.
 *
 * The slots are grouped by the master that serves them (ioredis's slot map), and each master gets
 * ONE pre-encoded write (resp-connection.ts, a raw connection per master) carrying the MULTI …
 * EXEC of every one of its slots in the batch: a batch costs one round trip per master, not one
 * per slot. Where every master has `SET … GET` (Redis 6.2+), a slot's MULTI reads and writes its
 * marker with that one command instead of a GET and a SET (multi-exec.ts `setGet`). ioredis
 * keeps the topology (slot map, refreshes) and serves SCAN, the marker check
 * and TRUNCATE's UNLINK.
 *
 * Replay after a crash compares per slot: a slot whose position covers a change skips it. Data
 * loss is noticed per slot (its marker is not the last batch written there). A slot whose MULTI
 * is refused before it ran (MOVED after a resharding or failover, ASK/TRYAGAIN while it migrates,
 * CLUSTERDOWN, OOM…) is sent again (MOVED: after refreshing the slot map; otherwise after a
 * backoff); a slot whose outcome is unknown (connection lost) is sent again only if its marker
 * does not hold the batch id. Slots already applied are not sent again.
 */
export class ClusterApplyLane extends RetryingLane implements Lane {
  private readonly markers = new Map<number, string | null>();
  private readonly slotPositions = new Map<string, Map<number, Position>>();
  /** one raw connection per master ("host:port" as in the slot map) */
  private readonly conns = new Map<string, RespConnection>();
  private readonly abortSleep = new AbortController();
  private readonly markerKeys: (string | undefined)[] = [];
  /** per sink, its position key in each slot, made once (16,384 at most per sink) */
  private readonly positionKeys = new Map<string, (string | undefined)[]>();

  readonly behindCheck = false;
  private loaded = false;
  /** every master has SET … GET (checked at load, and for each master that joins later) */
  private setGet = false;
  /** masters ("host:port") whose version was checked */
  private readonly versionChecked = new Set<string>();

  constructor(
    name: string,
    readonly redis: Cluster,
    log: Logger,
    private readonly onDataLoss: (loss: DataLoss) => void = () => undefined,
    /** whose batch markers this lane reads and writes (core/keyspace.ts instanceIdentity) */
    private readonly instance = '',
  ) {
    super(name, log);
  }

  async load(sinks: readonly string[]): Promise<Map<string, LoadedSink>> {
    const known = new Set<string>();
    const masters = this.redis.nodes('master');
    // INFO may be denied (the documented ACL allows it): then the marker takes a GET and a SET
    const versions = await Promise.all(masters.map((node) => node.info('server').then(String, () => '')));
    this.setGet = masters.length > 0 && versions.every(hasSetGet);
    for (const node of masters) this.versionChecked.add(`${node.options.host}:${node.options.port}`);
    for (const node of masters) {
      for (const key of await scanAll(node, SLOT_KEY_PATTERN)) {
        const k = parseSlotKey(key);
        if (!k) continue;
        const slot = slotOf(key);
        const value = await node.get(key);
        if (value === null) continue;
        if (k.kind === 'batch' && k.name === markerName(this.instance, this.name)) {
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

  async apply(part: ApplyPart): Promise<ApplyOutcome> {
    for (const prefix of part.unlinkPrefixes) {
      let removed = 0;
      const pattern = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
      for (const node of this.redis.nodes('master')) {
        for (const key of await scanAll(node, pattern)) if (!isOwnKey(key)) removed += await this.redis.unlink(key);
      }
      this.log.info({ redis: this.name, prefix, removed }, 'TRUNCATE applied: keys removed');
    }
    const { groups, rejected } = groupBySlot(part.commands, part.origins, (origin, slot) =>
      isCovered(this.slotPositions.get(origin.sink)?.get(slot) ?? null, origin.meta.commitLsn, origin.change.idx),
    );
    const unsure: UnsureCommand[] = [];
    await this.applySlots(groups, part, rejected, unsure);
    return { rejected, unsure };
  }

  async forget(sink: string): Promise<void> {
    this.slotPositions.delete(sink);
    this.positionKeys.delete(sink);
    for (const node of this.redis.nodes('master')) {
      for (const key of await scanAll(node, SLOT_KEY_PATTERN)) {
        const k = parseSlotKey(key);
        if (k && k.kind === 'pos' && k.name === sink) await node.del(key);
      }
    }
  }

  override stop(): void {
    super.stop();
    this.abortSleep.abort();
    for (const c of this.conns.values()) c.close();
    this.conns.clear();
  }

  /**
   * Sends every slot's MULTI, one write per master, until each slot has applied the batch exactly
   * once; refusals of data commands are added to `rejected`.
   */
  private async applySlots(groups: Map<number, SlotGroup>, part: ApplyPart, rejected: RejectedCommand[], unsure: UnsureCommand[]): Promise<void> {
    /** slots not applied yet */
    const pending = new Set(groups.keys());
    /** slots whose last attempt may have run (its reply was lost) */
    let uncertain: number[] = [];
    let attempt = 0;
    while (pending.size > 0) {
      if (this.stopped) throw new Error(`apply to Redis "${this.name}" stopped`);
      let refresh = false;
      let wait = false;
      let firstError: string | null = null;
      try {
        // ioredis pipelines these GETs per node
        const found = await Promise.all(uncertain.map((slot) => this.redis.get(this.markerKey(slot))));
        for (const [i, slot] of uncertain.entries()) {
          if (found[i] !== part.batchId) continue;
          // the replies are gone with the connection: the applier probes what Redis may have refused
          this.log.info({ redis: this.name, slot }, 'batch was applied before its reply was lost');
          const group = groups.get(slot);
          if (group) unsure.push(...unsureOf(group.commands, group.origins));
          this.markers.set(slot, part.batchId);
          pending.delete(slot);
        }
        uncertain = [];
        const { byNode, unowned } = slotsByNode(pending, (slot) => this.redis.slots[slot]?.[0]);
        if (unowned.length > 0) {
          refresh = true;
          firstError = `no node serves hash slot ${unowned[0]} (the slot map is being refreshed)`;
        }
        const sent = await Promise.all([...byNode].map(([node, slots]) => this.sendToNode(node, slots, groups, part)));
        for (const { slots, outcomes } of sent) {
          outcomes.forEach((o, i) => {
            const slot = slots[i]!;
            if (o.kind === 'applied') {
              this.applied(slot, part.batchId, o.result.before);
              for (const r of o.result.rejected) rejected.push(r);
              pending.delete(slot);
              return;
            }
            firstError ??= o.error;
            if (o.kind === 'unknown') {
              uncertain.push(slot);
              refresh = true;
            } else {
              const kind = refusalKind(o.error);
              if (kind === 'moved') refresh = true;
              else wait = true;
            }
          });
        }
      } catch (err) {
        // the marker check failed (node down, failover under way): everything is checked again
        firstError = errorMessage(err);
        uncertain = [...pending];
        refresh = true;
        wait = true;
      }
      if (pending.size === 0) break;
      attempt++;
      this.retries++;
      this.state = 'retrying';
      this.lastError = firstError;
      // a MOVED alone needs only the new slot map; anything else backs off
      const delay = wait || attempt > 1 || uncertain.length > 0 ? backoffDelayMs(attempt, 100, 5000) : 0;
      this.log.warn({ redis: this.name, slots: pending.size, err: firstError, retryInMs: delay, attempt }, 'Redis Cluster write failed for some hash slots; will retry them');
      if (delay > 0) await sleep(delay, this.abortSleep.signal).catch(() => undefined);
      if (refresh) await this.refreshSlots();
    }
    if (attempt > 0) this.log.info({ redis: this.name, attempts: attempt + 1 }, 'Redis writes resumed');
    this.state = 'ready';
    this.lastError = null;
  }

  /** One write to one master with the MULTI … EXEC of each of `slots`; the outcome of each. */
  private async sendToNode(node: string, slots: readonly number[], groups: Map<number, SlotGroup>, part: ApplyPart): Promise<{ slots: readonly number[]; outcomes: MultiOutcome[] }> {
    const setGet = this.setGet && (this.versionChecked.has(node) || (await this.checkVersion(node)));
    const positions = part.positions.filter(([, pos]) => pos !== null);
    const writes: GroupWrite[] = new Array<GroupWrite>(slots.length);
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      const g = groups.get(slot)!;
      writes[i] = {
        markerKey: this.markerKey(slot),
        batchId: part.batchId,
        commands: g.commands,
        origins: g.origins,
        positions: positions.map(([sink, pos]) => [this.positionKey(sink, slot), pos] as const),
        setGet,
      };
    }
    const { payload, replies } = encodeMultis(writes);
    try {
      const reply = await this.connection(node).request(payload, replies);
      return { slots, outcomes: checkMultis(reply, writes) };
    } catch (err) {
      const error = `${node}: ${errorMessage(err)}`;
      return { slots, outcomes: slots.map(() => ({ kind: 'unknown', error })) };
    }
  }

  /**
   * A master the lane has not written to before (a failover, a node added): SET … GET is used only
   * while every master has it. An older one would run the MULTI with its marker refused at EXEC,
   * so this is checked before sending it anything.
   */
  private async checkVersion(node: string): Promise<boolean> {
    const client = this.redis.nodes('master').find((n) => `${n.options.host}:${n.options.port}` === node);
    // not known to ioredis yet, or not answering: GET and SET this time, checked again next time
    const info = client ? await client.info('server').then(String, () => null) : null;
    if (info === null) return false;
    if (hasSetGet(info)) {
      this.versionChecked.add(node);
      return true;
    }
    this.setGet = false;
    this.log.info({ redis: this.name, node }, 'a Redis Cluster master without SET … GET (older than 6.2, or INFO denied): batch markers are read with GET from now on');
    return false;
  }

  private applied(slot: number, batchId: string, before: string | null): void {
    const expected = this.markers.get(slot) ?? null;
    if (before !== expected) {
      this.log.error({ redis: this.name, slot, expected, found: before }, 'Redis lost writes in a hash slot (failover to a replica that lacked them, restart without persistence, or FLUSHALL)');
      this.onDataLoss({ lane: this.name, found: before });
    }
    this.markers.set(slot, batchId);
  }

  /** the slot's batch marker key, made once per slot (16,384 at most) */
  private markerKey(slot: number): string {
    return (this.markerKeys[slot] ??= slotBatchMarkerKey(this.instance, this.name, slotTag(slot)));
  }

  /** a sink's position key in a slot */
  private positionKey(sink: string, slot: number): string {
    let keys = this.positionKeys.get(sink);
    if (!keys) this.positionKeys.set(sink, (keys = []));
    return (keys[slot] ??= slotPositionKey(sink, slotTag(slot)));
  }

  private connection(node: string): RespConnection {
    let c = this.conns.get(node);
    if (!c) this.conns.set(node, (c = new RespConnection(() => clusterEndpoint(this.redis, node))));
    return c;
  }

  /** Asks ioredis for the slot map again; drops the connections to nodes that serve no slot any more. */
  private async refreshSlots(): Promise<void> {
    await new Promise<void>((resolve) => this.redis.refreshSlotsCache(() => resolve()));
    const serving = new Set<string>();
    for (const owners of this.redis.slots) if (owners?.[0] !== undefined) serving.add(owners[0]);
    for (const [node, c] of this.conns) {
      if (serving.has(node)) continue;
      c.close();
      this.conns.delete(node);
    }
  }
}

/** The raw connection's endpoint for a node of the slot map: its host and port, and the Cluster's per-node options. */
export function clusterEndpoint(cluster: Cluster, node: string): RespEndpoint {
  const i = node.lastIndexOf(':');
  const o = cluster.options.redisOptions ?? {};
  const tls = o.tls === undefined ? undefined : typeof o.tls === 'object' ? o.tls : {};
  // ioredis's defaults are null for "none"
  return { host: node.slice(0, i), port: Number(node.slice(i + 1)), tls, username: o.username ?? undefined, password: o.password ?? undefined, name: o.connectionName ?? undefined };
}
