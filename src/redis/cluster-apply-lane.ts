import type { Cluster } from 'ioredis';
import { scanAll } from './scan-keys.js';
import type { Logger } from '../util/log.js';
import { isCovered, parsePosition, type Position } from '../core/position.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';
import { RetryingLane, unsureOf, type ApplyOutcome, type ApplyPart, type DataLoss, type Lane, type LoadedSink, type UnsureCommand } from './apply-lane.js';
import type { RejectedCommand } from '../core/command.js';
import { RespConnection, type RespEndpoint } from './resp-connection.js';
import { checkMultis, encodeMultis, groupBySlot, hasSetGet, refusalKind, slotsByNode, type MultiOutcome, type SlotGroup, type SlotWrite } from './cluster-batch.js';
import { isPlain, PlainTails, type PlainTail } from './plain-group.js';
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
  /** per sink, the position value last written in each slot (a plain group's data-loss check) */
  private readonly lastPositions = new Map<string, (string | undefined)[]>();
  /** one raw connection per master ("host:port" as in the slot map) */
  private readonly conns = new Map<string, RespConnection>();
  private readonly abortSleep = new AbortController();
  private readonly markerKeys: (string | undefined)[] = [];
  /** per sink, its position key in each slot, made once (16,384 at most per sink) */
  private readonly positionKeys = new Map<string, (string | undefined)[]>();
  /** the encoded bookkeeping of plain groups */
  private readonly tails = new PlainTails(
    (slot) => this.markerKey(slot),
    (sink, slot) => this.positionKey(sink, slot),
  );

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
          this.written(k.name)[slot] = value;
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
    this.lastPositions.delete(sink);
    this.positionKeys.delete(sink);
    this.tails.forget(sink);
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
    /** slots sent plain whose marker may hold the batch already (an attempt may have run in part) */
    const marked = new Set<number>();
    /** slots whose group may go without MULTI (cluster-batch.ts isPlain), when their master has SET … GET */
    const plain = new Set<number>();
    for (const [slot, group] of groups) if (isPlain(group)) plain.add(slot);
    const tail = this.tails.batch(part.batchId, part.positions);
    const positions = part.positions.filter(([, pos]) => pos !== null);
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
          for (const [sink, value] of positions) if (value !== null) this.written(sink)[slot] = value;
          pending.delete(slot);
        }
        uncertain = [];
        const { byNode, unowned } = slotsByNode(pending, (slot) => this.redis.slots[slot]?.[0]);
        if (unowned.length > 0) {
          refresh = true;
          firstError = `no node serves hash slot ${unowned[0]} (the slot map is being refreshed)`;
        }
        const sent = await Promise.all([...byNode].map(([node, slots]) => this.sendToNode(node, slots, groups, part, plain, tail)));
        for (const { slots, outcomes, sentPlain } of sent) {
          outcomes.forEach((o, i) => {
            const slot = slots[i]!;
            if (o.kind === 'applied') {
              if (o.found) this.tailApplied(slot, tail, o.found, marked.has(slot));
              else this.applied(slot, part.batchId, o.result.before, positions);
              for (const r of o.result.rejected) rejected.push(r);
              pending.delete(slot);
              return;
            }
            firstError ??= o.error;
            if (o.kind === 'unknown') {
              refresh = true;
              // a plain group is sent again as it is (running it twice is running it once)
              if (sentPlain && plain.has(slot)) marked.add(slot);
              else uncertain.push(slot);
              return;
            }
            if (o.found) {
              // a plain group refused in part: what its tail wrote is checked and now expected
              this.tailApplied(slot, tail, o.found, marked.has(slot));
              marked.add(slot);
            }
            const kind = refusalKind(o.error);
            if (kind === 'moved') refresh = true;
            else wait = true;
          });
        }
      } catch (err) {
        // the marker check failed (node down, failover under way): everything is checked again
        firstError = errorMessage(err);
        // plain groups are sent again without a check
        uncertain = [...pending].filter((slot) => !marked.has(slot));
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

  /** One write to one master with each of `slots` (its MULTI … EXEC, or plain); the outcome of each. */
  private async sendToNode(
    node: string,
    slots: readonly number[],
    groups: Map<number, SlotGroup>,
    part: ApplyPart,
    plain: ReadonlySet<number>,
    tail: PlainTail,
  ): Promise<{ slots: readonly number[]; outcomes: MultiOutcome[]; sentPlain: boolean }> {
    const setGet = this.setGet && (this.versionChecked.has(node) || (await this.checkVersion(node)));
    const positions = part.positions.filter(([, pos]) => pos !== null);
    const writes: SlotWrite[] = new Array<SlotWrite>(slots.length);
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      const g = groups.get(slot)!;
      // plain needs SET … GET: without it a slot keeps its MULTI
      const isPlainWrite = setGet && plain.has(slot);
      writes[i] = {
        slot,
        markerKey: this.markerKey(slot),
        batchId: part.batchId,
        commands: g.commands,
        origins: g.origins,
        // a plain group's positions are in `tail`
        positions: isPlainWrite ? NO_POSITIONS : positions.map(([sink, pos]) => [this.positionKey(sink, slot), pos] as const),
        setGet,
        plain: isPlainWrite,
      };
    }
    const { payload, replies } = encodeMultis(writes, tail);
    try {
      const reply = await this.connection(node).request(payload.finish(), replies);
      return { slots, outcomes: checkMultis(reply, writes, tail), sentPlain: setGet };
    } catch (err) {
      const error = `${node}: ${errorMessage(err)}`;
      return { slots, outcomes: slots.map(() => ({ kind: 'unknown', error })), sentPlain: setGet };
    } finally {
      payload.release();
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

  /** A slot's MULTI ran: its marker held `before`; the positions it wrote are what the slot holds now. */
  private applied(slot: number, batchId: string, before: string | null, positions: readonly (readonly [string, string | null])[]): void {
    this.compare(slot, this.markers.get(slot) ?? null, before, false);
    this.markers.set(slot, batchId);
    for (const [sink, value] of positions) if (value !== null) this.written(sink)[slot] = value;
  }

  /**
   * A plain group's tail ran (in full, or in part: undefined where refused): each SET … GET's value
   * before is compared with what the lane wrote there last. `marked`: an earlier attempt may have
   * run it already, so its own value is no loss.
   */
  private tailApplied(slot: number, tail: PlainTail, found: readonly (string | null | undefined)[], marked: boolean): void {
    tail.written.forEach(({ sink, value }, i) => {
      const before = found[i];
      if (before === undefined) return;
      if (sink === null) {
        this.compare(slot, this.markers.get(slot) ?? null, before, marked && before === value);
        this.markers.set(slot, value);
      } else {
        const written = this.written(sink);
        this.compare(slot, written[slot] ?? null, before, marked && before === value);
        written[slot] = value;
      }
    });
  }

  private compare(slot: number, expected: string | null, found: string | null, again: boolean): void {
    if (found === expected || again) return;
    this.log.error({ redis: this.name, slot, expected, found }, 'Redis lost writes in a hash slot (failover to a replica that lacked them, restart without persistence, or FLUSHALL)');
    this.onDataLoss({ lane: this.name, found });
  }

  /** what the lane wrote last to a sink's position key, per slot (as loaded, then as written) */
  private written(sink: string): (string | undefined)[] {
    let list = this.lastPositions.get(sink);
    if (!list) this.lastPositions.set(sink, (list = []));
    return list;
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

const NO_POSITIONS: readonly (readonly [string, string | null])[] = [];

/** The raw connection's endpoint for a node of the slot map: its host and port, and the Cluster's per-node options. */
export function clusterEndpoint(cluster: Cluster, node: string): RespEndpoint {
  const i = node.lastIndexOf(':');
  const o = cluster.options.redisOptions ?? {};
  const tls = o.tls === undefined ? undefined : typeof o.tls === 'object' ? o.tls : {};
  // ioredis's defaults are null for "none"
  return { host: node.slice(0, i), port: Number(node.slice(i + 1)), tls, username: o.username ?? undefined, password: o.password ?? undefined, name: o.connectionName ?? undefined };
}
