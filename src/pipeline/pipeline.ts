import type { Action, Change, Transaction } from '../core/change.js';
import { TransactionAssembler } from '../core/transaction-assembler.js';
import { fillUnchangedToast } from '../core/toast.js';
import type { MessageMeta } from '../core/render.js';
import { PgoutputDecoder } from '../pg/pgoutput/decoder.js';
import { ReplicationSource } from '../pg/replication-source.js';
import type { LogicalMessage, ReplicationMessage } from '../pg/pgoutput/types.js';
import { formatLsn, type Lsn, ZERO_LSN } from '../pg/lsn.js';
import { ApplyLane, type CommandOrigin, type RejectedCommand } from '../redis/apply-lane.js';
import { connectRedis, type RedisClient } from '../redis/connect.js';
import type { RedisCommand, Sink } from '../sinks/sink.js';
import type { Logger } from '../util/log.js';
import type { Metrics } from '../metrics.js';
import { TableMatcher } from './table-match.js';
import { failedMessageCommand } from './failed-messages.js';
import { errorMessage } from '../util/errors.js';

export interface SinkSpec {
  readonly sink: Sink;
  /** name of the Redis connection */
  readonly redis: string;
  readonly tables: readonly string[];
  readonly actions: readonly Action[];
}

export interface PipelineOptions {
  source: { url: string; slot: string; publication: string };
  sinks: readonly SinkSpec[];
  redis: ReadonlyMap<string, RedisClient>;
  log: Logger;
  metrics: Metrics;
  /** a batch is closed once it holds this many commands (whole transactions only) */
  batchMaxCommands: number;
}

interface SinkRuntime extends SinkSpec {
  readonly matcher: TableMatcher;
  readonly actionSet: ReadonlySet<Action>;
  /** transactions with a commit LSN at or below this are already in Redis (read at start) */
  startPosition: Lsn | null;
  paused: boolean;
}

interface LanePart {
  commands: RedisCommand[];
  origins: (CommandOrigin | null)[];
}

/** Whole transactions collected while the previous batch is being applied. */
interface Batch {
  readonly parts: Map<string, LanePart>;
  commandCount: number;
  transactions: number;
  changes: number;
  endLsn: Lsn;
  lastCommitLsn: Lsn;
  lastCommitTime: bigint;
  readonly counts: Map<string, number>;
}

export type PipelineState = 'starting' | 'running' | 'draining' | 'stopped';

/**
 * The one place where Postgres changes become Redis writes, in commit order:
 *
 *   replication source ─► pgoutput decoder ─► transaction assembler ─► sinks (pure planning)
 *        ▲                                                                 │
 *        └── confirm(end LSN) ◄── apply lanes (one MULTI/EXEC per Redis) ◄─┘
 *
 * Two batches at most exist at a time: the one being applied and the one being collected.
 * When the collected one is full the source stops reading the socket (backpressure reaches the
 * walsender); it resumes as soon as the batch is taken for apply.
 */
export class Pipeline {
  state: PipelineState = 'starting';
  private decoder = new PgoutputDecoder();
  private readonly assembler: TransactionAssembler;
  private readonly source: ReplicationSource;
  private readonly sinks: SinkRuntime[];
  private readonly lanes = new Map<string, ApplyLane>();
  private pending: Batch | null = null;
  private applying = false;
  private backpressured = false;
  private lastSeenCommit: Lsn = ZERO_LSN;
  private lastAppliedCommitTime: bigint | null = null;
  private idleWaiters: (() => void)[] = [];
  private fatal: Error | null = null;
  /** subscribers to non-transactional logical messages (backfill watermarks) */
  readonly logicalMessageHandlers: ((msg: LogicalMessage) => void)[] = [];

  constructor(private readonly opts: PipelineOptions) {
    this.sinks = opts.sinks.map((s) => ({
      ...s,
      matcher: new TableMatcher(s.tables),
      actionSet: new Set<Action>([...s.actions, 'read']),
      startPosition: null,
      paused: false,
    }));
    this.assembler = new TransactionAssembler({
      transaction: (txn) => this.onTransaction(txn),
      logicalMessage: (msg) => this.logicalMessageHandlers.forEach((h) => h(msg)),
    });
    this.source = new ReplicationSource({
      ...opts.source,
      protoVersion: 1,
      log: opts.log,
      onMessage: (msg) => this.onMessage(msg),
      onConnected: () => {
        this.assembler.reset();
        this.decoder = new PgoutputDecoder();
      },
    });
  }

  get confirmedLsn(): Lsn {
    return this.source.confirmedLsn;
  }

  get sourceState(): string {
    return this.source.state;
  }

  get lastError(): string | null {
    return this.fatal?.message ?? this.source.lastError ?? [...this.lanes.values()].find((l) => l.lastError)?.lastError ?? null;
  }

  /** Age of the last applied commit while something is pending; 0 when caught up. */
  lagMs(nowMs = Date.now()): number {
    if (!this.applying && this.pending === null) return 0;
    if (this.lastAppliedCommitTime === null) return 0;
    const commitMs = Number(this.lastAppliedCommitTime / 1000n) + Date.UTC(2000, 0, 1);
    return Math.max(0, nowMs - commitMs);
  }

  laneStates(): { name: string; state: string; lastError: string | null }[] {
    return [...this.lanes.values()].map((l) => ({ name: l.name, state: l.state, lastError: l.lastError }));
  }

  async start(): Promise<void> {
    const { log } = this.opts;
    for (const [name, client] of this.opts.redis) {
      const sinkNames = this.sinks.filter((s) => s.redis === name).map((s) => s.sink.name);
      if (sinkNames.length === 0) continue;
      await connectRedis(client);
      const lane = new ApplyLane(name, client, sinkNames, log, (rejected) => this.onRejected(lane, rejected));
      this.lanes.set(name, lane);
      const positions = await lane.readPositions();
      for (const s of this.sinks) {
        if (s.redis !== name) continue;
        s.startPosition = positions.get(s.sink.name) ?? null;
        log.info({ sink: s.sink.name, position: s.startPosition === null ? null : formatLsn(s.startPosition) }, 'sink ready');
      }
    }
    this.state = 'running';
    this.source.start(ZERO_LSN);
  }

  /** Stops reading, applies every whole transaction already received, confirms, closes. */
  async stop(timeoutMs = 15_000): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'draining';
    this.source.pause();
    const drained = await Promise.race([
      this.whenIdle().then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref()),
    ]);
    if (!drained) this.opts.log.warn('drain timed out; unapplied changes will be streamed again at the next start');
    for (const lane of this.lanes.values()) lane.stop();
    await this.source.stop();
    this.state = 'stopped';
    this.opts.log.info({ confirmed: formatLsn(this.source.confirmedLsn) }, 'pipeline stopped');
  }

  /** Resolves once nothing is pending or being applied. */
  whenIdle(): Promise<void> {
    if (!this.applying && this.pending === null) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private onMessage(msg: ReplicationMessage): void {
    if (msg.tag === 'keepalive') {
      // Everything received is applied: the server's position may be confirmed, so an idle
      // slot on a busy database does not hold WAL forever.
      if (!this.assembler.inTransaction && this.pending === null && !this.applying) this.source.confirm(msg.walEnd);
      return;
    }
    this.assembler.push(this.decoder.decode(msg.data));
  }

  private onTransaction(txn: Transaction): void {
    // After a reconnect Postgres resends what was not confirmed yet: drop what we already have.
    if (txn.commitLsn <= this.lastSeenCommit) return;
    this.lastSeenCommit = txn.commitLsn;
    const batch = (this.pending ??= newBatch());
    for (const sink of this.sinks) {
      if (sink.startPosition !== null && txn.commitLsn <= sink.startPosition) continue;
      const meta: MessageMeta = { commitLsn: txn.commitLsn, commitTimeMicros: txn.commitTimeMicros, sinkName: sink.sink.name };
      let part = batch.parts.get(sink.redis);
      if (!part) {
        part = { commands: [], origins: [] };
        batch.parts.set(sink.redis, part);
      }
      const lanePart = part;
      let origin: CommandOrigin | null = null;
      let current: Change | null = null;
      const out = {
        command(cmd: RedisCommand): void {
          lanePart.commands.push(cmd);
          lanePart.origins.push((origin ??= { sink: sink.sink.name, change: current!, meta }));
        },
        fail: (change: Change, reason: string): void => {
          lanePart.commands.push(failedMessageCommand(change, meta, reason));
          lanePart.origins.push(null);
          this.opts.metrics.failed.inc({ sink: sink.sink.name });
          this.opts.log.warn({ sink: sink.sink.name, table: change.table.qualifiedName, lsn: formatLsn(txn.commitLsn), idx: change.idx, reason }, 'message failed');
        },
      };
      for (const raw of txn.changes) {
        if (!sink.actionSet.has(raw.action) || !sink.matcher.matches(raw.table)) continue;
        const change = fillUnchangedToast(raw);
        current = change;
        origin = null;
        sink.sink.plan(change, meta, out);
        const k = `${sink.sink.name}\u0000${change.action}`;
        batch.counts.set(k, (batch.counts.get(k) ?? 0) + 1);
      }
      for (const t of txn.truncates) {
        for (const table of t.tables) {
          if (!sink.matcher.matches(table)) continue;
          this.opts.log.warn({ sink: sink.sink.name, table: table.qualifiedName }, 'TRUNCATE is not applied to Redis by this version; run sluice verify --repair');
        }
      }
    }
    batch.commandCount = [...batch.parts.values()].reduce((n, p) => n + p.commands.length, 0);
    batch.transactions++;
    batch.changes += txn.changes.length;
    batch.endLsn = txn.endLsn;
    batch.lastCommitLsn = txn.commitLsn;
    batch.lastCommitTime = txn.commitTimeMicros;
    if (batch.commandCount >= this.opts.batchMaxCommands && this.applying && !this.backpressured) {
      this.backpressured = true;
      this.source.pause();
    }
    this.kick();
  }

  private kick(): void {
    if (this.applying || this.pending === null || this.fatal) return;
    const batch = this.pending;
    this.pending = null;
    this.applying = true;
    if (this.backpressured) {
      this.backpressured = false;
      if (this.state === 'running') this.source.resume();
    }
    this.applyBatch(batch).then(
      () => {
        this.applying = false;
        if (this.pending !== null) this.kick();
        else this.notifyIdle();
      },
      (err: unknown) => {
        this.applying = false;
        if (this.state === 'running') {
          this.fatal = err instanceof Error ? err : new Error(String(err));
          this.opts.log.error({ err: errorMessage(err) }, 'apply failed');
        }
        this.notifyIdle();
      },
    );
  }

  private async applyBatch(batch: Batch): Promise<void> {
    const started = performance.now();
    const { metrics } = this.opts;
    await Promise.all(
      [...this.lanes.values()].map(async (lane) => {
        const part = batch.parts.get(lane.name) ?? { commands: [], origins: [] };
        const retriesBefore = lane.retries;
        await lane.apply({ commands: part.commands, origins: part.origins, lastCommitLsn: batch.lastCommitLsn });
        if (lane.retries > retriesBefore) metrics.redisRetries.inc({ redis: lane.name }, lane.retries - retriesBefore);
        metrics.batches.inc({ redis: lane.name });
      }),
    );
    this.source.confirm(batch.endLsn);
    this.lastAppliedCommitTime = batch.lastCommitTime;
    metrics.transactions.inc(batch.transactions);
    for (const [k, n] of batch.counts) {
      const [sink, action] = k.split('\u0000') as [string, string];
      metrics.changes.inc({ sink, action }, n);
    }
    metrics.confirmedLsn.set(Number(batch.endLsn));
    metrics.batchSeconds.observe((performance.now() - started) / 1000);
  }

  private onRejected(lane: ApplyLane, rejected: RejectedCommand[]): void {
    // Redis ran the rest of the MULTI: record each rejected message as failed, separately.
    const commands = rejected.map((r) => failedMessageCommand(r.origin.change, r.origin.meta, `Redis rejected the command: ${r.error}`));
    for (const r of rejected) {
      this.opts.metrics.failed.inc({ sink: r.origin.sink });
      this.opts.log.warn({ sink: r.origin.sink, table: r.origin.change.table.qualifiedName, lsn: formatLsn(r.origin.meta.commitLsn), idx: r.origin.change.idx, reason: r.error }, 'message failed');
    }
    const multi = lane.redis.multi();
    for (const [name, ...args] of commands) multi.call(name!, ...args);
    multi.exec().catch((err: unknown) => {
      this.opts.log.error({ redis: lane.name, err: errorMessage(err) }, 'could not record failed messages');
    });
  }

  private notifyIdle(): void {
    if (this.applying || this.pending !== null) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((w) => w());
  }
}

function newBatch(): Batch {
  return { parts: new Map(), commandCount: 0, transactions: 0, changes: 0, endLsn: ZERO_LSN, lastCommitLsn: ZERO_LSN, lastCommitTime: 0n, counts: new Map() };
}
