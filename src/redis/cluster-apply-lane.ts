import type { Cluster } from 'ioredis';
import { scanAll } from './scan-keys.js';
import type { Logger } from '../util/log.js';
import { comparePositions, loadedCovers, loadedMax, parsePosition, type LoadedPositions, type Position } from '../core/position.js';
import { backoffDelayMs, sleep } from '../util/backoff.js';
import { errorMessage } from '../util/errors.js';
import { RetryingLane, unsureOf, type ApplyOutcome, type ApplyPart, type DataLoss, type Lane, type LoadedSink, type UnsureCommand } from './apply-lane.js';
import type { RejectedCommand } from '../core/command.js';
import { RespConnection, type RespEndpoint } from './resp-connection.js';
import { checkMulti, hasSetGet, newAttempt, refusalKind, SlotLayout, slotsByNode, type Attempt, type SlotWrite } from './cluster-batch.js';
import { checkPlainData, isPlainAt } from './plain-group.js';
import { multiFrameReplies, writeMulti } from './multi-exec.js';
import type { Reply } from './resp-connection.js';
import { RespWriter } from './resp-writer.js';
import { slotOf, slotTag } from './slot-tags.js';
import { isOwnKey, markerName, parseSlotKey, positionKey, SLOT_KEY_PATTERN, slotBatchMarkerKey, slotPositionKey } from '../core/keyspace.js';
import { WrittenLast } from './cluster-losses.js';
import { checkPositions, writePositions, type PositionWrite } from './cluster-positions.js';

/**
 * Applies batches to a Redis Cluster. MULTI cannot span hash slots, so a batch is split by slot.
 * A slot's share goes plain (plain-group.ts: idempotent commands, each key and transaction once)
 * or as one MULTI … EXEC, in the batch's order, holding that slot's own position keys
 * (`sluice:pos:<sink>:{tag}`) and batch marker (`sluice:batch:<instance>:<lane>:{tag}`), placed in
 * the slot by a hash tag. A transaction is thus atomic per slot; keys that share a hash tag
 * (`order:{user42}:…`) share a slot and are atomic together.
 *
 * The slots are grouped by the master that serves them (ioredis's slot map), and each master gets
 * ONE pre-encoded write (resp-connection.ts, a raw connection per master) carrying every one of
 * its slots' share of the batch: a batch costs one round trip per master, not one per slot. Once
 * every slot has the batch, each sink's position (`sluice:pos:<sink>`, one key) is written with
 * `SET … GET`. Where every master has `SET … GET` (Redis 6.2+), a slot's MULTI reads and writes its
 * marker with that one command (multi-exec.ts `setGet`); without it no slot goes plain. ioredis
 * keeps the topology (slot map, refreshes) and serves SCAN, the marker check and TRUNCATE's UNLINK.
 *
 *   batch ─► one write per master: plain data · MULTIs · probe ─► all slots applied ─► SET sluice:pos:<sink> … GET
 *              ▲   │ refused (MOVED/ASK/OOM…), reply lost                                 │ refused, reply lost
 *              └───┘ plain: sent again whole; MULTI: its marker read first                └─► sent again
 *
 * Replay after a crash: what the sink's position covers is skipped, and per slot what its MULTI
 * position covers; at most the batch being applied is sent again, whose plain groups write the
 * values they already wrote. Data loss is noticed by a marker that is not the last batch id
 * written there: a MULTI's, the probe that ends each write to a master (`probeOf`), and the sink's
 * position. A slot refused before it ran (MOVED after a resharding or failover, ASK/TRYAGAIN while
 * it migrates, CLUSTERDOWN, OOM…) is sent again (MOVED: after refreshing the slot map; otherwise
 * after a backoff); a MULTI whose outcome is unknown (connection lost) is sent again only if its
 * marker does not hold the batch id. Slots already applied are not sent again.
 */
export class ClusterApplyLane extends RetryingLane implements Lane {
  /** what the lane wrote last in Redis, to notice lost writes */
  private readonly written = new WrittenLast((lost) => {
    this.log.error({ redis: this.name, ...lost }, 'Redis lost writes (failover to a replica that lacked them, restart without persistence, or FLUSHALL)');
    this.onDataLoss({ lane: this.name, found: lost.found });
  });
  /** per sink, its positions loaded at the start: dropped once its position passes the furthest of them */
  private readonly replay = new Map<string, LoadedPositions & { readonly until: Position }>();
  /** one raw connection per master ("host:port" as in the slot map) */
  private readonly conns = new Map<string, RespConnection>();
  private readonly abortSleep = new AbortController();
  private readonly markerKeys: (string | undefined)[] = [];
  /** per sink, its position key in each slot, made once (16,384 at most per sink) */
  private readonly positionKeys = new Map<string, (string | undefined)[]>();
  /** the batch being applied, laid out by slot */
  private readonly layout = new SlotLayout();
  /** per slot, for the batch being applied: not applied yet; sent plain */
  private readonly pending = new Uint8Array(16384);
  private readonly plain = new Uint8Array(16384);

  readonly behindCheck = true;
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
    const slots = new Map<string, Map<number, Position>>();
    for (const node of masters) {
      for (const key of await scanAll(node, SLOT_KEY_PATTERN)) {
        const k = parseSlotKey(key);
        if (!k) continue;
        const slot = slotOf(key);
        const value = await node.get(key);
        if (value === null) continue;
        if (k.kind === 'batch' && k.name === markerName(this.instance, this.name)) {
          if (!this.loaded) this.written.loadedMarker(slot, value);
        } else if (k.kind === 'pos' && sinks.includes(k.name)) {
          const map = slots.get(k.name) ?? new Map<number, Position>();
          map.set(slot, parsePosition(value));
          slots.set(k.name, map);
          known.add(k.name);
        }
      }
    }
    for (const sink of sinks) {
      const value = await this.redis.get(positionKey(sink));
      this.written.loadedPosition(sink, value);
      if (value !== null) known.add(sink);
      const loaded = { floor: value === null ? null : parsePosition(value), slots: slots.get(sink) ?? new Map<number, Position>() };
      const until = loadedMax(loaded);
      if (until !== null) this.replay.set(sink, { ...loaded, until });
    }
    this.loaded = true;
    // the pipeline skips nothing by itself: replays are filtered per slot here
    return new Map(sinks.map((s) => [s, { skip: null, known: known.has(s), stored: this.replay.get(s)?.floor ?? null }]));
  }

  /** A sink's positions as Redis held them when loaded (the tail probe's bounds). */
  loadedPositions(sink: string): LoadedPositions {
    return this.replay.get(sink) ?? { floor: null, slots: new Map<number, Position>() };
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
    const { replay } = this;
    this.layout.layout(part.commands, part.origins, replay.size === 0 ? null : (origin, slot) => {
      const loaded = replay.get(origin.sink);
      return loaded !== undefined && loadedCovers(loaded, slot, origin.meta.commitLsn, origin.change.idx);
    });
    const rejected = [...this.layout.rejected];
    const unsure: UnsureCommand[] = [];
    await this.applySlots(part, rejected, unsure);
    // every slot has the batch: the sinks' positions say so (a restart skips what they cover)
    const positions = part.positions.filter((p): p is readonly [string, string] => p[1] !== null);
    if (positions.length > 0) await this.writePositions(positions);
    this.pastReplays(positions);
    return { rejected, unsure };
  }

  /**
   * A sink whose position passed the furthest one loaded has no replay left: its loaded positions
   * are dropped, and its commands no longer looked up (the tail probe took its own copy).
   */
  private pastReplays(positions: readonly (readonly [string, string])[]): void {
    for (const [sink, value] of positions) {
      const loaded = this.replay.get(sink);
      if (loaded !== undefined && comparePositions(parsePosition(value), loaded.until) >= 0) this.replay.delete(sink);
    }
  }

  async forget(sink: string): Promise<void> {
    this.replay.delete(sink);
    this.written.forgetSink(sink);
    this.positionKeys.delete(sink);
    await this.redis.del(positionKey(sink));
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
    const { layout, pending, plain } = this;
    const positions = part.positions.filter(([, pos]) => pos !== null);
    for (const slot of layout.slots) {
      pending[slot] = 1;
      plain[slot] = isPlainAt(part.commands, part.origins, layout.order, layout.start[slot]!, layout.count[slot]!) ? 1 : 0;
    }
    let left = layout.slots.length;
    /** MULTI slots whose last attempt may have run (its reply was lost) */
    let uncertain: number[] = [];
    let attempt = 0;
    while (left > 0) {
      if (this.stopped) throw new Error(`apply to Redis "${this.name}" stopped`);
      const a = newAttempt();
      try {
        // ioredis pipelines these GETs per node
        const found = await Promise.all(uncertain.map((slot) => this.redis.get(this.markerKey(slot))));
        for (const [i, slot] of uncertain.entries()) {
          if (found[i] !== part.batchId) continue;
          // the replies are gone with the connection: the applier probes what Redis may have refused
          this.log.info({ redis: this.name, slot }, 'batch was applied before its reply was lost');
          const group = layout.group(slot, part.commands, part.origins);
          unsure.push(...unsureOf(group.commands, group.origins));
          this.written.ran(slot, part.batchId);
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
        await Promise.all([...byNode].map(([node, slots]) => this.sendToNode(node, slots, part, positions, a, rejected)));
      } catch (err) {
        // the marker check failed (node down, failover under way): every MULTI is checked again (a
        // plain slot is sent again unchecked: its marker may hold the batch id from a probe alone)
        a.firstError = errorMessage(err);
        a.refresh = true;
        a.wait = true;
        a.uncertain.length = 0;
        for (const slot of layout.slots) if (pending[slot] === 1 && plain[slot] === 0) a.uncertain.push(slot);
      }
      left -= a.applied;
      // a slot sent plain is sent again as it is; a MULTI whose reply was lost is checked first
      uncertain = a.uncertain;
      if (left === 0) break;
      await this.failed(++attempt, a, `${left} hash slot(s)`, uncertain.length > 0);
    }
    this.resumed(attempt);
  }

  /** An attempt left work undone: counted, logged, then a backoff and (if asked) a new slot map. */
  private async failed(attempt: number, a: Attempt, what: string, uncertain: boolean): Promise<void> {
    this.retries++;
    this.state = 'retrying';
    this.lastError = a.firstError;
    // a MOVED alone needs only the new slot map; anything else backs off
    const delay = a.wait || attempt > 1 || uncertain ? backoffDelayMs(attempt, 100, 5000) : 0;
    this.log.warn({ redis: this.name, left: what, err: a.firstError, retryInMs: delay, attempt }, 'Redis Cluster write failed; will retry');
    if (delay > 0) await sleep(delay, this.abortSleep.signal).catch(() => undefined);
    if (a.refresh) await this.refreshSlots();
  }

  private resumed(attempts: number): void {
    if (attempts > 0) this.log.info({ redis: this.name, attempts: attempts + 1 }, 'Redis writes resumed');
    this.state = 'ready';
    this.lastError = null;
  }

  /**
   * One master's share of an attempt, in one write: each slot's data commands (plain) or MULTI …
   * EXEC, then the master's probe of lost writes (`probeOf`). A plain slot a refusal (MOVED, ASK,
   * OOM…) left half done is sent again whole. What became of each slot is recorded in the lane's
   * per-slot state and in `a`.
   */
  private async sendToNode(
    node: string,
    slotList: readonly number[],
    part: ApplyPart,
    positions: readonly (readonly [string, string | null])[],
    a: Attempt,
    rejected: RejectedCommand[],
  ): Promise<void> {
    const { layout, pending, plain } = this;
    const { commands, origins } = part;
    const setGet = await this.hasSetGet(node);
    const probe = setGet ? this.written.probeOf(node, (slot) => this.redis.slots[slot]?.[0]) : -1;
    // the probe slot's MULTI, if it has one here, goes last: it is then the probe
    let slots = slotList;
    const probeMulti = probe >= 0 && plain[probe] === 0 && slotList.includes(probe);
    if (probeMulti) slots = [...slotList.filter((slot) => slot !== probe), probe];
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
      // plain needs SET … GET (the probe): without it a slot keeps its MULTI
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
    const probeSet = probe >= 0 && !probeMulti;
    if (probeSet) {
      out.command(['SET', this.markerKey(probe), part.batchId, 'GET']);
      replies++;
    }
    const reply = await this.request(node, out, replies, a);
    if (reply === null) {
      // lost with the connection: a plain slot may have run in part (sent again), a MULTI in full (checked)
      for (let i = 0; i < slots.length; i++) if (multis[i]) a.uncertain.push(slots[i]!);
      if (probeSet) this.written.maybeRan(probe, part.batchId);
      return;
    }
    let off = 0;
    for (let i = 0; i < slots.length; i++) {
      const slot = slots[i]!;
      const w = multis[i];
      if (w) {
        const o = checkMulti(reply, off, w);
        off += multiFrameReplies(w);
        if (o.kind === 'applied') {
          this.written.markerFound(slot, o.result.before, part.batchId);
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
      const from = rejected.length;
      const refusal = checkPlainData(reply, off, origins, layout.order, layout.start[slot]!, n, rejected);
      off += n;
      if (refusal !== null) {
        // sent again whole: what it found wrong is found again then
        rejected.length = from;
        a.firstError ??= refusal;
        this.refused(refusal, a);
        continue;
      }
      pending[slot] = 0;
      a.applied++;
    }
    if (probeSet) {
      // a probe refused (its slot moving) only means no check this time
      const r = reply[off];
      if (r === null || typeof r === 'string') this.written.markerFound(probe, r, part.batchId);
      else this.written.probeRefused(node);
    }
  }

  /**
   * Writes each sink's position (`sluice:pos:<sink>`) once every slot has the batch, until Redis
   * takes it. `SET … GET` returns the value before, which must be the one written last (else the
   * key's master lost writes); finding the value being written is no loss (an earlier attempt
   * whose reply was lost).
   */
  private async writePositions(positions: readonly (readonly [string, string])[]): Promise<void> {
    let left: PositionWrite[] = positions.map(([sink, value]) => [sink, positionKey(sink), value]);
    let attempt = 0;
    for (;;) {
      if (this.stopped) throw new Error(`apply to Redis "${this.name}" stopped`);
      const a = newAttempt();
      const undone: PositionWrite[] = [];
      const { byNode, unowned } = slotsByNode(left.keys(), (i) => this.redis.slots[slotOf(left[i]![1])]?.[0]);
      for (const i of unowned) undone.push(left[i]!);
      if (unowned.length > 0) {
        a.refresh = true;
        a.firstError = 'no node serves the slot of a position key (the slot map is being refreshed)';
      }
      await Promise.all(
        [...byNode].map(async ([node, indices]) => {
          const list = indices.map((i) => left[i]!);
          const setGet = await this.hasSetGet(node);
          const out = new RespWriter(128 * list.length, true);
          const { found, error } = checkPositions(await this.request(node, out, writePositions(out, list, setGet), a), list, setGet);
          if (error !== null) {
            a.firstError ??= `Redis rejected a bookkeeping command: ${error}`;
            this.refused(error, a);
          }
          for (const [j, p] of list.entries()) {
            const before = found[j];
            if (before === undefined) undone.push(p);
            else this.written.positionFound(p[0], p[1], before, p[2]);
          }
        }),
      );
      if (undone.length === 0) break;
      left = undone;
      await this.failed(++attempt, a, `${left.length} sink position(s)`, false);
    }
    this.resumed(attempt);
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

  /** Whether SET … GET may be sent to this master (every master has it; a new one is checked first). */
  private async hasSetGet(node: string): Promise<boolean> {
    return this.setGet && (this.versionChecked.has(node) || (await this.checkVersion(node)));
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
    this.written.keepProbes(serving);
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
