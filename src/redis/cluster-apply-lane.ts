import type { Cluster } from 'ioredis';
import { scanAll } from './scan-keys.js';
import type { Logger } from '../util/log.js';
import { comparePositions, isCovered, parsePosition, type Position } from '../core/position.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';
import { RetryingLane, unsureOf, type ApplyOutcome, type ApplyPart, type DataLoss, type Lane, type LoadedSink, type UnsureCommand } from './apply-lane.js';
import type { RejectedCommand } from '../core/command.js';
import { RespConnection, type RespEndpoint } from './resp-connection.js';
import { checkMulti, hasSetGet, refusalKind, SlotLayout, slotsByNode, type SlotWrite } from './cluster-batch.js';
import { checkPlainData, checkTail, isPlainAt, PlainTails, type PlainTail, type TailEntry } from './plain-group.js';
import { multiFrameReplies, writeMulti } from './multi-exec.js';
import type { Reply } from './resp-connection.js';
import { RespWriter } from './resp-writer.js';
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
  /** per sink, the largest of its loaded slot positions: past it, no change can be a replay */
  private readonly loadedMax = new Map<string, Position>();
  /** per sink, the position value last written in each slot (a plain group's data-loss check) */
  private readonly lastPositions = new Map<string, (string | undefined)[]>();
  /** one raw connection per master ("host:port" as in the slot map) */
  private readonly conns = new Map<string, RespConnection>();
  private readonly abortSleep = new AbortController();
  private readonly markerKeys: (string | undefined)[] = [];
  /** per sink, its position key in each slot, made once (16,384 at most per sink) */
  private readonly positionKeys = new Map<string, (string | undefined)[]>();
  /** the batch being applied, laid out by slot */
  private readonly layout = new SlotLayout();
  /** per slot, for the batch being applied: not applied yet; sent plain; a plain attempt may have run (its reply was lost) */
  private readonly pending = new Uint8Array(16384);
  private readonly plain = new Uint8Array(16384);
  private readonly marked = new Uint8Array(16384);
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
          const position = parsePosition(value);
          map.set(slot, position);
          const max = this.loadedMax.get(k.name);
          if (max === undefined || comparePositions(position, max) > 0) this.loadedMax.set(k.name, position);
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
    // replays are filtered per slot, while positions loaded at the start may cover some
    this.layout.layout(part.commands, part.origins, this.slotPositions.size === 0 ? null : (origin, slot) =>
      isCovered(this.slotPositions.get(origin.sink)?.get(slot) ?? null, origin.meta.commitLsn, origin.change.idx),
    );
    const rejected = [...this.layout.rejected];
    const unsure: UnsureCommand[] = [];
    await this.applySlots(part, rejected, unsure);
    this.pastReplays(part.positions);
    return { rejected, unsure };
  }

  /**
   * A sink whose position passed the largest one loaded has no replay left: its loaded positions
   * are dropped, and its commands no longer looked up (the tail probe took its own copy).
   */
  private pastReplays(positions: readonly (readonly [string, string | null])[]): void {
    for (const [sink, value] of positions) {
      if (value === null) continue;
      const max = this.loadedMax.get(sink);
      if (max === undefined || comparePositions(parsePosition(value), max) < 0) continue;
      this.slotPositions.delete(sink);
      this.loadedMax.delete(sink);
    }
  }

  async forget(sink: string): Promise<void> {
    this.slotPositions.delete(sink);
    this.loadedMax.delete(sink);
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
   * Sends every slot's share, one write per master, until each slot has applied the batch exactly
   * once; refusals of data commands are added to `rejected`. A slot goes plain (plain-group.ts)
   * where it may, else as a MULTI.
   */
  private async applySlots(part: ApplyPart, rejected: RejectedCommand[], unsure: UnsureCommand[]): Promise<void> {
    const { layout, pending, plain, marked } = this;
    const tail = this.tails.batch(part.batchId, part.positions);
    const positions = part.positions.filter(([, pos]) => pos !== null);
    for (const slot of layout.slots) {
      pending[slot] = 1;
      marked[slot] = 0;
      plain[slot] = isPlainAt(part.commands, part.origins, layout.order, layout.start[slot]!, layout.count[slot]!) ? 1 : 0;
    }
    let left = layout.slots.length;
    /** MULTI slots whose last attempt may have run (its reply was lost) */
    let uncertain: number[] = [];
    let attempt = 0;
    while (left > 0) {
      if (this.stopped) throw new Error(`apply to Redis "${this.name}" stopped`);
      const a: Attempt = { refresh: false, wait: false, firstError: null, uncertain: [], applied: 0 };
      try {
        // ioredis pipelines these GETs per node
        const found = await Promise.all(uncertain.map((slot) => this.redis.get(this.markerKey(slot))));
        for (const [i, slot] of uncertain.entries()) {
          if (found[i] !== part.batchId) continue;
          // the replies are gone with the connection: the applier probes what Redis may have refused
          this.log.info({ redis: this.name, slot }, 'batch was applied before its reply was lost');
          const group = layout.group(slot, part.commands, part.origins);
          unsure.push(...unsureOf(group.commands, group.origins));
          this.ran(slot, part.batchId, positions);
          pending[slot] = 0;
          left--;
        }
        uncertain = [];
        const { byNode, unowned } = slotsByNode(
          layout.slots.filter((slot) => pending[slot] === 1),
          (slot) => this.redis.slots[slot]?.[0],
        );
        if (unowned.length > 0) {
          a.refresh = true;
          a.firstError = `no node serves hash slot ${unowned[0]} (the slot map is being refreshed)`;
        }
        await Promise.all([...byNode].map(([node, slots]) => this.sendToNode(node, slots, part, tail, positions, a, rejected)));
      } catch (err) {
        // the marker check failed (node down, failover under way): everything is checked again
        a.firstError = errorMessage(err);
        a.refresh = true;
        a.wait = true;
        a.uncertain.length = 0;
        for (const slot of layout.slots) if (pending[slot] === 1) a.uncertain.push(slot);
      }
      left -= a.applied;
      // a slot sent plain is sent again as it is; a MULTI whose reply was lost is checked first
      uncertain = a.uncertain;
      if (left === 0) break;
      attempt++;
      this.retries++;
      this.state = 'retrying';
      this.lastError = a.firstError;
      // a MOVED alone needs only the new slot map; anything else backs off
      const delay = a.wait || attempt > 1 || uncertain.length > 0 ? backoffDelayMs(attempt, 100, 5000) : 0;
      this.log.warn({ redis: this.name, slots: left, err: a.firstError, retryInMs: delay, attempt }, 'Redis Cluster write failed for some hash slots; will retry them');
      if (delay > 0) await sleep(delay, this.abortSleep.signal).catch(() => undefined);
      if (a.refresh) await this.refreshSlots();
    }
    if (attempt > 0) this.log.info({ redis: this.name, attempts: attempt + 1 }, 'Redis writes resumed');
    this.state = 'ready';
    this.lastError = null;
  }

  /**
   * One master's share of an attempt. First write: each slot's data commands (plain) or MULTI …
   * EXEC. Second write, for the plain slots whose commands all ran: their tails (the positions).
   * A position is thus written only once its slot's data is in Redis, and never for a slot a
   * refusal (MOVED, ASK, OOM…) left half done: that slot is sent again whole. What became of each
   * slot is recorded in the lane's per-slot state and in `a`.
   */
  private async sendToNode(
    node: string,
    slots: readonly number[],
    part: ApplyPart,
    tail: PlainTail,
    positions: readonly (readonly [string, string | null])[],
    a: Attempt,
    rejected: RejectedCommand[],
  ): Promise<void> {
    const { layout, pending, plain, marked } = this;
    const { commands, origins } = part;
    const setGet = this.setGet && (this.versionChecked.has(node) || (await this.checkVersion(node)));
    const multis = new Array<SlotWrite | null>(slots.length).fill(null);
    const out = new RespWriter(slots.length * 320, true);
    let replies = 0;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      if (setGet && plain[slot] === 1) {
        const from = layout.start[slot]!;
        const n = layout.count[slot]!;
        for (let k = 0; k < n; k++) out.command(commands[layout.order[from + k]!]!);
        replies += n;
        continue;
      }
      // plain needs SET … GET: without it a slot keeps its MULTI
      const g = layout.group(slot, commands, origins);
      const w: SlotWrite = {
        slot,
        markerKey: this.markerKey(slot),
        batchId: part.batchId,
        commands: g.commands,
        origins: g.origins,
        positions: positions.map(([sink, pos]) => [this.positionKey(sink, slot), pos] as const),
        setGet,
      };
      multis[i] = w;
      writeMulti(out, w);
      replies += multiFrameReplies(w);
    }
    const reply = await this.request(node, out, replies, a);
    if (reply === null) {
      // lost with the connection: a plain slot may have run in part (sent again), a MULTI in full (checked)
      for (let i = 0; i < slots.length; i++) if (multis[i]) a.uncertain.push(slots[i]!);
      return;
    }
    const tailSlots: number[] = [];
    /** data commands Redis found wrong in a plain slot, reported once its tail runs */
    let slotRejected: Map<number, RejectedCommand[]> | null = null;
    const slotErrors: RejectedCommand[] = [];
    let off = 0;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      const w = multis[i];
      if (w) {
        const o = checkMulti(reply, off, w);
        off += multiFrameReplies(w);
        if (o.kind === 'applied') {
          this.applied(slot, part.batchId, o.result.before, positions);
          for (const r of o.result.rejected) rejected.push(r);
          pending[slot] = 0;
          a.applied++;
          continue;
        }
        a.firstError ??= o.error;
        if (o.kind === 'unknown') {
          a.uncertain.push(slot);
          a.refresh = true;
        } else this.refused(o.error, a);
        continue;
      }
      const n = layout.count[slot]!;
      const refusal = checkPlainData(reply, off, origins, layout.order, layout.start[slot]!, n, slotErrors);
      off += n;
      if (refusal !== null) {
        // sent again whole: what it found wrong is found again then
        slotErrors.length = 0;
        a.firstError ??= refusal;
        this.refused(refusal, a);
        continue;
      }
      if (slotErrors.length > 0) {
        (slotRejected ??= new Map()).set(slot, slotErrors.slice());
        slotErrors.length = 0;
      }
      tailSlots.push(slot);
    }
    if (tailSlots.length === 0) return;
    const tails = new RespWriter(tailSlots.length * 96 * tail.replies, true);
    for (const slot of tailSlots) tail.write(tails, slot);
    const tailReply = await this.request(node, tails, tailSlots.length * tail.replies, a);
    const found: (string | null | undefined)[] = [];
    off = 0;
    for (const slot of tailSlots) {
      if (tailReply === null) {
        // the tail may have run: its own value is then no loss
        marked[slot] = 1;
        continue;
      }
      const failed = checkTail(tailReply, off, tail, found);
      for (let j = 0; j < found.length; j++) {
        const before = found[j];
        if (before !== undefined) this.tailRan(slot, tail.written[j]!, before, marked[slot] === 1);
      }
      off += tail.replies;
      if (failed !== null) {
        marked[slot] = 1;
        a.firstError ??= failed;
        this.refused(failed, a);
        continue;
      }
      pending[slot] = 0;
      a.applied++;
      const errs = slotRejected?.get(slot);
      if (errs) for (const r of errs) rejected.push(r);
    }
  }

  /** One write to a master; null (recorded in `a`) if the connection failed. The writer is released. */
  private async request(node: string, out: RespWriter, replies: number, a: Attempt): Promise<Reply[] | null> {
    try {
      return await this.connection(node).request(out.finish(), replies);
    } catch (err) {
      a.firstError ??= `${node}: ${errorMessage(err)}`;
      a.refresh = true;
      return null;
    } finally {
      out.release();
    }
  }

  /** A slot refused for now: MOVED needs the new slot map; anything else a backoff. */
  private refused(error: string, a: Attempt): void {
    if (refusalKind(error) === 'moved') a.refresh = true;
    else a.wait = true;
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
    this.ran(slot, batchId, positions);
  }

  /** A slot's MULTI ran: Redis holds its marker and positions now. */
  private ran(slot: number, batchId: string, positions: readonly (readonly [string, string | null])[]): void {
    this.markers.set(slot, batchId);
    for (const [sink, value] of positions) if (value !== null) this.written(sink)[slot] = value;
  }

  /**
   * One SET … GET of a plain slot's tail ran: what it found is compared with what the lane wrote
   * there last, and its value is what the slot holds now. `again`: an earlier attempt may have run
   * it already, so its own value is no loss.
   */
  private tailRan(slot: number, entry: TailEntry, before: string | null, again: boolean): void {
    const { sink, value } = entry;
    if (sink === null) {
      this.compare(slot, this.markers.get(slot) ?? null, before, again && before === value);
      this.markers.set(slot, value);
    } else {
      const written = this.written(sink);
      this.compare(slot, written[slot] ?? null, before, again && before === value);
      written[slot] = value;
    }
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

/** What one attempt of a batch came to, over its masters. */
interface Attempt {
  refresh: boolean;
  wait: boolean;
  firstError: string | null;
  /** MULTI slots whose reply was lost: their marker is checked before they are sent again */
  readonly uncertain: number[];
  /** slots applied */
  applied: number;
}

/** The raw connection's endpoint for a node of the slot map: its host and port, and the Cluster's per-node options. */
export function clusterEndpoint(cluster: Cluster, node: string): RespEndpoint {
  const i = node.lastIndexOf(':');
  const o = cluster.options.redisOptions ?? {};
  const tls = o.tls === undefined ? undefined : typeof o.tls === 'object' ? o.tls : {};
  // ioredis's defaults are null for "none"
  return { host: node.slice(0, i), port: Number(node.slice(i + 1)), tls, username: o.username ?? undefined, password: o.password ?? undefined, name: o.connectionName ?? undefined };
}
