// A model-based test of the real runtime Pipeline (src/runtime/pipeline.ts) with no servers: an
// in-memory WAL and slot (support/memory-wal.ts) and an in-memory Redis (support/memory-redis.ts),
// driven by fast-check commands as in ElectricSQL's model-based tests. Commands commit, deliver,
// send keepalives, pause, resume, add and remove sinks, slow Redis down, drop the connection and
// crash the process; after every one, Redis, the sinks' positions and the slot are checked
// against what the WAL says they must be.
//
// Checked after every command:
//  - the pipeline is streaming; a sink is paused exactly when the model paused it, and sink
//    states move only along SINK_TRANSITIONS (src/plan/states.ts);
//  - Redis holds each sink's data and position of the same instant (MULTI): a list sink holds the
//    changes of a contiguous run of transactions ending at its position, in commit order, with no
//    gap and no duplicate, starting where it was added (never later; earlier only back to what
//    the slot still had); the string sink's keys are the table as of its position;
//  - the slot's confirmed position never passes a transaction a sink has not applied (one
//    committed before the sink was added excepted);
// and at the end of a run (every sink resumed, the whole WAL delivered and applied, an idle
// keepalive): every sink is active, at the WAL's last transaction, with all of it.
//
// Bugs the model found are replayed as `todo` tests at the end (shrunk counterexamples); the main
// property steps around each of them as narrowly as it can (`Known`) to look for others.
// More runs: SLUICE_MODEL_RUNS=5000 node scripts/run-tests.mjs unit test/unit/runtime-model.test.ts
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatLsn } from '../../src/core/lsn.js';
import { formatPosition } from '../../src/core/position.js';
import { parseSinkBlock } from '../../src/config/sink-block.js';
import { createSink } from '../../src/sinks/index.js';
import { Metrics } from '../../src/metrics.js';
import { createLogger } from '../../src/util/log.js';
import { Pipeline, type SinkSpec } from '../../src/runtime/pipeline.js';
import { nextSinkState, sinkState, type SinkEvent, type SinkState } from '../../src/plan/states.js';
import { MemoryWal, type MemorySource, type RowWrite } from './support/memory-wal.js';
import { MemoryLane, MemoryRedis } from './support/memory-redis.js';

const log = createLogger('silent');
const REDIS = 'main';
const STRING_PREFIX = 'item:';

function spec(block: Record<string, unknown>): SinkSpec {
  const r = parseSinkBlock(block, { redisNames: [REDIS] });
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.path}: ${p.message}`).join('; '));
  return { sink: createSink(r.sink), redis: REDIS, tables: r.sink.tables, actions: r.sink.actions };
}

/** A history sink: every change as a Sequin message (its metadata names the change). */
const listSpec = (name: string): SinkSpec =>
  spec({ name, type: 'list', tables: ['public.items'], key: name, push: 'append', value: 'message', actions: ['insert', 'update', 'delete'] });

const stringSpec = (name: string): SinkSpec =>
  spec({ name, type: 'string', tables: ['public.items'], key: `${STRING_PREFIX}{id}`, value: 'record', actions: ['insert', 'update', 'delete'] });

// ---- bugs found, stepped around by the main property ------------------------------------------

/** Each flag avoids one bug (see the todo tests), as narrowly as the model allows. */
interface Known {
  /** bug 1: a held sink with no position does not hold the slot. Sinks are paused only once Redis has their position. */
  nullHold: boolean;
  /**
   * bug 2: a second resume before the first restart's connection delivered anything: its replay
   * is dropped by the resend filter. That connection, being closed, hands over nothing more.
   */
  resetOverwrite: boolean;
  /** bug 3: a sink resumed is caught up before it has seen what the closing connection still hands over. It hands over nothing. */
  staleCatchUp: boolean;
  /** bug 4: batches in flight when a sink resumes confirm past its replay. Resume waits for Redis first. */
  resumeInFlight: boolean;
}

const STRICT: Known = { nullHold: false, resetOverwrite: false, staleCatchUp: false, resumeInFlight: false };
const modelSeed: number | undefined = process.env.SLUICE_MODEL_SEED !== undefined ? Number(process.env.SLUICE_MODEL_SEED) : process.env.CI ? 20261130 : undefined;
const KNOWN: Known = STRICT; // every bug the model found is fixed: the main property runs with no steering

// ---- the model -------------------------------------------------------------------------------

interface ModelSink {
  readonly name: string;
  readonly kind: 'list' | 'string';
  paused: boolean;
  /** transactions committed when it was added: every later one is its */
  readonly addedAt: number;
  /** the first transaction the slot still had when it was added: it never gets an older one */
  readonly minStart: number;
  /** the first transaction after its position as added (what it starts with, unless a crash rewinds it) */
  readonly exactStart: number;
}

interface Model {
  sinks: ModelSink[];
  /** rows of public.items now: id → v */
  readonly rows: Map<number, string>;
  txns: number;
  nextSink: number;
}

// ---- the system under test --------------------------------------------------------------------

class World {
  readonly wal = new MemoryWal();
  readonly redis = new MemoryRedis();
  private readonly client = MemoryLane.idleClient();
  readonly specs = new Map<string, SinkSpec>();
  pipeline!: Pipeline;
  lane!: MemoryLane;
  removals: Promise<void>[] = [];
  readonly dataLoss: string[] = [];
  readonly steps: string[] = [];

  constructor(readonly known: Known) {}

  get source(): MemorySource {
    const s = this.wal.current;
    if (!s) throw new Error('no source');
    return s;
  }

  /** A new process: a Pipeline over the same WAL and Redis, with the sinks (and pauses) the state store would give it. */
  async boot(sinks: readonly ModelSink[]): Promise<void> {
    this.removals = [];
    this.pipeline = new Pipeline({
      source: { url: 'postgres://model.invalid/app', slot: 'sluice', publication: 'sluice' },
      sinks: sinks.map((s) => ({ ...this.specs.get(s.name)!, paused: s.paused })),
      redis: new Map(),
      log,
      metrics: new Metrics(false),
      batchMaxCommands: 3,
      maxTransactionRows: 1000,
      makeStream: this.wal.makeStream,
      makeLane: (name) => {
        this.lane = new MemoryLane(name, this.redis, this.client);
        return Promise.resolve(this.lane);
      },
      // the unconfirmed tail after a crash is probed against what the in-memory Redis holds
      readKeyTypes: (_lane, reads) => Promise.resolve(this.redis.keyTypes(reads.keys)),
      onDataLoss: (names) => this.dataLoss.push(...names),
    });
    const found = await this.pipeline.start(this.wal.confirmed);
    assert.deepEqual(found.behind, [], 'at start, a sink position is behind the slot');
  }

  /** Lets every promise of the Pipeline run (the lane answers at once unless stalled). */
  async flush(): Promise<void> {
    for (let i = 0; i < 8; i++) await new Promise((r) => setImmediate(r));
  }

  /** Redis answers again, and everything received is applied. */
  async settle(): Promise<void> {
    this.lane.unstall();
    await this.flush();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('the pipeline never became idle')), 5000);
    });
    try {
      await Promise.race([this.pipeline.whenIdle(), timeout]);
      await Promise.race([Promise.all(this.removals), timeout]);
    } finally {
      clearTimeout(timer);
    }
    this.removals = [];
    await this.flush();
  }

  state(name: string): SinkState {
    const s = this.pipeline.sinkRuntime(name);
    assert.ok(s, `sink "${name}" is missing from the pipeline`);
    return sinkState(s);
  }

  /** How many transactions the sink's position in Redis covers. */
  through(name: string): number {
    const pos = this.redis.position(name);
    return pos === null ? 0 : this.wal.countThrough(pos.lsn);
  }
}

// ---- what Redis must hold --------------------------------------------------------------------

/** `transaction index:change idx` of each change of transactions [from, to). */
function changesOf(w: World, from: number, to: number): string[] {
  const out: string[] = [];
  for (let t = from; t < to; t++) for (const c of w.wal.txns[t]!.changes) out.push(`${t}:${c.idx}`);
  return out;
}

/** A list entry (a Sequin message) as `transaction index:change idx`. */
function entryOf(w: World, entry: string): string {
  const m = JSON.parse(entry) as { metadata: { commit_lsn: string; commit_idx: number } };
  const t = w.wal.txns.findIndex((x) => formatLsn(x.commitLsn) === m.metadata.commit_lsn);
  assert.ok(t >= 0, `a list entry of no transaction: ${entry}`);
  return `${t}:${m.metadata.commit_idx}`;
}

/** public.items after the first `n` transactions, as the string sink writes it (sorted by key). */
function tableAfter(w: World, n: number): [string, string][] {
  const rows = new Map<string, string>();
  for (let t = 0; t < n; t++) {
    for (const r of w.wal.writes[t]!) {
      if (r.v === null) rows.delete(`${STRING_PREFIX}${r.id}`);
      else rows.set(`${STRING_PREFIX}${r.id}`, JSON.stringify({ id: r.id, v: r.v }));
    }
  }
  return sortedEntries(rows);
}

function stringKeys(w: World): [string, string][] {
  return sortedEntries(new Map([...w.redis.strings].filter(([k]) => k.startsWith(STRING_PREFIX))));
}

const sortedEntries = (m: Map<string, string>): [string, string][] => [...m].sort(([a], [b]) => (a < b ? -1 : 1));

/** Everything checked after each command. */
function checkInvariants(m: Model, w: World): void {
  assert.equal(w.pipeline.state, 'streaming', `the pipeline is ${w.pipeline.state}: ${w.pipeline.lastError ?? ''}`);
  assert.deepEqual(w.dataLoss, [], 'the lane reported data loss');
  assert.deepEqual(w.pipeline.sinks.map((s) => s.name).sort(), m.sinks.map((s) => s.name).sort(), 'the pipeline has the sinks the model has');
  const confirmedThrough = w.wal.countThrough(w.wal.confirmed);
  for (const s of m.sinks) {
    const state = w.state(s.name);
    if (s.paused) assert.equal(state, 'paused', `sink "${s.name}" was paused`);
    else assert.ok(state === 'active' || state === 'catching-up', `sink "${s.name}" is ${state}, not active or catching up`);

    const pos = w.redis.position(s.name);
    assert.ok(pos === null || pos.idx === null, `sink "${s.name}" stopped inside a transaction: ${pos && formatPosition(pos)}`);
    const through = w.through(s.name);
    const at = `sink "${s.name}" at ${pos === null ? 'no position' : formatPosition(pos)} (transaction ${through}), slot at ${formatLsn(w.wal.confirmed)} (transaction ${confirmedThrough})`;

    if (s.kind === 'list') {
      const got = (w.redis.lists.get(s.name) ?? []).map((e) => entryOf(w, e));
      if (got.length > 0) {
        const first = Number(got[0]!.split(':')[0]);
        assert.ok(first >= s.minStart && first <= s.exactStart, `${at}: its list starts at transaction ${first}, expected ${s.minStart}…${s.exactStart}`);
        assert.deepEqual(got, changesOf(w, first, through), `${at}: its list is not transactions ${first}…${through - 1}, in order, once each`);
      } else {
        assert.ok(through <= s.exactStart, `${at}: its position passed transactions ${s.exactStart}…${through - 1} it does not hold`);
      }
    } else {
      assert.deepEqual(stringKeys(w), tableAfter(w, through), `${at}: its keys are not the table as of its position`);
    }
    const owed = Math.max(through, s.addedAt);
    assert.ok(confirmedThrough <= owed, `${at}: the slot was confirmed past transactions ${owed}…${confirmedThrough - 1} it has not applied`);
  }
}

/** Sink states may move only along SINK_TRANSITIONS, by these events (two in a row at most: a resume that replays and catches up in one step). */
function checkMoves(before: ReadonlyMap<string, SinkState>, w: World, events: readonly SinkEvent[], label: string): void {
  for (const [name, from] of before) {
    const s = w.pipeline.sinkRuntime(name);
    if (!s) continue;
    const to = sinkState(s);
    const one = events.map((e) => nextSinkState(from, e));
    const two = one.flatMap((x) => events.map((e) => nextSinkState(x, e)));
    assert.ok(to === from || one.includes(to) || two.includes(to), `${label}: sink "${name}" went ${from} → ${to}, not a move of SINK_TRANSITIONS by ${events.join('/')}`);
  }
}

function states(w: World): Map<string, SinkState> {
  return new Map(w.pipeline.sinks.map((s) => [s.name, sinkState(s)]));
}

// ---- commands -------------------------------------------------------------------------------

type Cmd = fc.AsyncCommand<Model, World>;

/** Runs a command's action, lets the pipeline work, and checks. */
async function step(m: Model, w: World, label: string, events: readonly SinkEvent[], action: () => void | Promise<void>): Promise<void> {
  w.steps.push(label);
  const before = states(w);
  await action();
  await w.flush();
  checkMoves(before, w, events, label);
  checkInvariants(m, w);
}

/** What may happen to a sink on its own: a catch-up ends. */
const QUIET: SinkEvent[] = ['caught-up'];

/** A transaction of 1-3 row writes on ids 1-4: an insert or update, or a delete when `del` and the row exists. */
class Commit implements Cmd {
  constructor(readonly ops: readonly { id: number; del: boolean }[]) {}
  check = (): boolean => true;
  async run(m: Model, w: World): Promise<void> {
    await step(m, w, this.toString(), QUIET, () => {
      const n = m.txns++;
      const writes: RowWrite[] = this.ops.map((op, i) => {
        const exists = m.rows.has(op.id);
        if (op.del && exists) {
          m.rows.delete(op.id);
          return { id: op.id, v: null, action: 'delete' };
        }
        const v = `t${n}c${i}`;
        m.rows.set(op.id, v);
        return { id: op.id, v, action: exists ? 'update' : 'insert' };
      });
      w.wal.commit(writes);
    });
  }
  toString = (): string => `Commit(${this.ops.map((o) => `${o.del ? '-' : '+'}${o.id}`).join(' ')})`;
}

/** WAL nothing is published from (other tables): only keepalives show it. */
class Noise implements Cmd {
  check = (): boolean => true;
  async run(m: Model, w: World): Promise<void> {
    await step(m, w, this.toString(), QUIET, () => w.wal.noise());
  }
  toString = (): string => 'Noise';
}

/** Up to `n` transactions on the connection (`stale`: on the one a restart is closing, if any). */
class Deliver implements Cmd {
  constructor(
    readonly n: number,
    readonly stale: boolean,
  ) {}
  check = (): boolean => true;
  async run(m: Model, w: World): Promise<void> {
    const src = w.source;
    const known = src.sinceConnect === 0 ? w.known.resetOverwrite : w.known.staleCatchUp;
    const stale = this.stale && !(known && src.restarting);
    const label = stale === this.stale ? this.toString() : `Deliver(${this.n}) [not stale: known bug]`;
    await step(m, w, label, QUIET, () => void w.source.deliver(this.n, stale));
  }
  toString = (): string => `Deliver(${this.n}${this.stale ? ', stale' : ''})`;
}

class Keepalive implements Cmd {
  constructor(readonly stale: boolean) {}
  check = (): boolean => true;
  async run(m: Model, w: World): Promise<void> {
    await step(m, w, this.toString(), QUIET, () => w.source.keepalive(this.stale));
  }
  toString = (): string => `Keepalive${this.stale ? '(stale)' : ''}`;
}

class Settle implements Cmd {
  check = (): boolean => true;
  async run(m: Model, w: World): Promise<void> {
    await step(m, w, this.toString(), QUIET, () => w.settle());
  }
  toString = (): string => 'Settle';
}

/** Redis gets slow (applies wait), answers again, or answers one waiting batch. */
class RedisSpeed implements Cmd {
  constructor(readonly what: 'stall' | 'unstall' | 'one') {}
  check = (): boolean => true;
  async run(m: Model, w: World): Promise<void> {
    await step(m, w, this.toString(), QUIET, () => (this.what === 'stall' ? w.lane.stall() : this.what === 'unstall' ? w.lane.unstall() : w.lane.applyOne()));
  }
  toString = (): string => ({ stall: 'StallRedis', unstall: 'UnstallRedis', one: 'RedisAppliesOne' })[this.what];
}

class Pause implements Cmd {
  constructor(readonly i: number) {}
  check = (m: Readonly<Model>): boolean => m.sinks.length > 0;
  async run(m: Model, w: World): Promise<void> {
    const s = m.sinks[this.i % m.sinks.length]!;
    if (w.known.nullHold && w.redis.position(s.name) === null) {
      w.steps.push(`Pause(${s.name}) [skipped, no position yet: known bug]`);
      return;
    }
    await step(m, w, `Pause(${s.name})`, ['pause', 'caught-up'], () => {
      const expected = nextSinkState(w.state(s.name), 'pause');
      w.pipeline.pauseSink(s.name);
      s.paused = true;
      assert.equal(w.state(s.name), expected, `Pause(${s.name})`);
    });
  }
  toString = (): string => `Pause(#${this.i})`;
}

class Resume implements Cmd {
  constructor(readonly i: number) {}
  check = (m: Readonly<Model>): boolean => m.sinks.some((s) => s.paused);
  async run(m: Model, w: World): Promise<void> {
    const paused = m.sinks.filter((s) => s.paused);
    const s = paused[this.i % paused.length]!;
    if (w.known.resumeInFlight) {
      w.steps.push('[Redis settles first: known bug]');
      await w.settle();
    }
    await step(m, w, `Resume(${s.name})`, ['resume', 'resume-replay', 'caught-up'], () => {
      const from = w.state(s.name);
      w.pipeline.resumeSink(s.name);
      s.paused = false;
      const to = w.state(s.name);
      assert.ok(to === nextSinkState(from, 'resume') || to === nextSinkState(from, 'resume-replay'), `Resume(${s.name}): ${from} → ${to}`);
    });
  }
  toString = (): string => `Resume(#${this.i})`;
}

class AddSink implements Cmd {
  constructor(readonly paused: boolean) {}
  check = (m: Readonly<Model>): boolean => m.sinks.length < 6;
  async run(m: Model, w: World): Promise<void> {
    const name = `feed${m.nextSink++}`;
    const paused = this.paused && !w.known.nullHold;
    const label = `AddSink(${name}${paused ? ', paused' : ''})${paused === this.paused ? '' : ' [not paused: known bug]'}`;
    await step(m, w, label, QUIET, async () => {
      const sp = listSpec(name);
      w.specs.set(name, sp);
      const minStart = w.wal.countThrough(w.wal.confirmed);
      const s = await w.pipeline.addSink(sp, paused);
      assert.equal(sinkState(s), nextSinkState('starting', paused ? 'ready-paused' : 'ready'), label);
      const exactStart = s.position === null ? minStart : w.wal.countThrough(s.position.lsn);
      m.sinks.push({ name, kind: 'list', paused, addedAt: m.txns, minStart, exactStart });
    });
  }
  toString = (): string => `AddSink(${this.paused ? 'paused' : ''})`;
}

class RemoveSink implements Cmd {
  constructor(readonly i: number) {}
  check = (m: Readonly<Model>): boolean => m.sinks.length > 0;
  async run(m: Model, w: World): Promise<void> {
    const s = m.sinks[this.i % m.sinks.length]!;
    await step(m, w, `RemoveSink(${s.name})`, QUIET, () => {
      w.removals.push(w.pipeline.removeSink(s.name));
      m.sinks = m.sinks.filter((x) => x !== s);
      assert.equal(w.pipeline.sinkRuntime(s.name), undefined);
    });
  }
  toString = (): string => `RemoveSink(#${this.i})`;
}

/** The replication connection drops; the new one streams from the confirmed position. */
class Reconnect implements Cmd {
  check = (): boolean => true;
  async run(m: Model, w: World): Promise<void> {
    await step(m, w, this.toString(), QUIET, () => w.source.reconnect());
  }
  toString = (): string => 'Reconnect';
}

/** The process dies (no stop): a new one starts over the same WAL, slot and Redis. */
class Crash implements Cmd {
  constructor(readonly landed: boolean) {}
  check = (): boolean => true;
  async run(m: Model, w: World): Promise<void> {
    w.steps.push(this.toString());
    w.lane.crash(this.landed);
    await w.boot(m.sinks);
    await w.flush();
    for (const s of m.sinks) assert.equal(w.state(s.name), s.paused ? 'paused' : 'active', `after a crash, sink "${s.name}"`);
    checkInvariants(m, w);
  }
  toString = (): string => `Crash(${this.landed ? 'batch in flight landed' : 'batch in flight lost'})`;
}

const writes = fc.array(fc.record({ id: fc.integer({ min: 1, max: 4 }), del: fc.boolean() }), { minLength: 1, maxLength: 3 });

/** One command, weighted: mostly writes and deliveries, with the disruptions among them. */
const command: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: writes.map((ops): Cmd => new Commit(ops)) },
  { weight: 1, arbitrary: fc.constant<Cmd>(new Noise()) },
  { weight: 5, arbitrary: fc.tuple(fc.integer({ min: 1, max: 4 }), fc.boolean()).map(([n, stale]): Cmd => new Deliver(n, stale)) },
  { weight: 2, arbitrary: fc.boolean().map((stale): Cmd => new Keepalive(stale)) },
  { weight: 1, arbitrary: fc.constant<Cmd>(new Settle()) },
  { weight: 2, arbitrary: fc.constantFrom<'stall' | 'unstall' | 'one'>('stall', 'unstall', 'one').map((what): Cmd => new RedisSpeed(what)) },
  { weight: 3, arbitrary: fc.nat(9).map((i): Cmd => new Pause(i)) },
  { weight: 3, arbitrary: fc.nat(9).map((i): Cmd => new Resume(i)) },
  { weight: 1, arbitrary: fc.boolean().map((paused): Cmd => new AddSink(paused)) },
  { weight: 1, arbitrary: fc.nat(9).map((i): Cmd => new RemoveSink(i)) },
  { weight: 1, arbitrary: fc.constant<Cmd>(new Reconnect()) },
  { weight: 1, arbitrary: fc.boolean().map((landed): Cmd => new Crash(landed)) },
);

// ---- a run ----------------------------------------------------------------------------------

async function newWorld(known: Known): Promise<{ model: Model; world: World }> {
  const world = new World(known);
  world.specs.set('feed', listSpec('feed'));
  world.specs.set('items', stringSpec('items'));
  const model: Model = {
    sinks: [
      { name: 'feed', kind: 'list', paused: false, addedAt: 0, minStart: 0, exactStart: 0 },
      { name: 'items', kind: 'string', paused: false, addedAt: 0, minStart: 0, exactStart: 0 },
    ],
    rows: new Map(),
    txns: 0,
    nextSink: 2,
  };
  await world.boot(model.sinks);
  return { model, world };
}

/** Every sink resumed, everything delivered and applied: every sink has all of the WAL. */
async function finish(m: Model, w: World): Promise<void> {
  w.steps.push('(end: resume all; deliver all, keepalive, settle until done)');
  for (const s of m.sinks) {
    if (!s.paused) continue;
    w.pipeline.resumeSink(s.name);
    s.paused = false;
  }
  const done = (): boolean => w.source.caughtUp && w.pipeline.sinks.every((s) => sinkState(s) === 'active');
  for (let round = 0; ; round++) {
    assert.ok(round < 200, 'the WAL was never delivered and applied to the end');
    await w.settle();
    if (done()) break;
    w.source.deliver(1000);
    w.source.keepalive(); // the server's, while it has nothing to send
  }
  // one more: what no sink holds any more (a removed paused one) is confirmed
  w.source.keepalive();
  await w.settle();
  checkInvariants(m, w);
  const n = w.wal.txns.length;
  for (const s of m.sinks) {
    assert.equal(w.state(s.name), 'active', `sink "${s.name}" at the end`);
    // a sink added after the last transaction may have no position yet: it owes nothing
    const through = Math.max(w.through(s.name), s.exactStart);
    assert.equal(through, n, `sink "${s.name}" is at transaction ${through} of ${n} at the end`);
    if (s.kind === 'string') assert.deepEqual(stringKeys(w), tableAfter(w, n));
  }
  if (n > 0) assert.ok(w.wal.confirmed >= w.wal.txns[n - 1]!.endLsn, `the slot is at ${formatLsn(w.wal.confirmed)} at the end, before the last transaction`);
  assert.deepEqual([...w.redis.hashes.keys()], [], 'no failed messages');
}

async function run(cmds: Iterable<Cmd>, known: Known): Promise<void> {
  const { model, world } = await newWorld(known);
  try {
    await fc.asyncModelRun(() => ({ model, real: world }), cmds);
    await finish(model, world);
  } catch (err) {
    if (err instanceof Error) err.message += `\n  steps run: ${world.steps.join(', ')}`;
    throw err;
  }
}

test(
  'runtime model: list sinks hold every transaction once in commit order, the string sink is the table, the slot never passes what a sink has not applied',
  { timeout: 120_000 },
  async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands([command], { maxCommands: 40, size: 'max' }), (cmds) => run(cmds, KNOWN)),
      // random seeds explore (fast-check prints the seed of a failure); CI runs a fixed one, so a
      // rare interleaving found later is reported by a developer run, not by a red landing
      { numRuns: Number(process.env.SLUICE_MODEL_RUNS ?? 100), ...(modelSeed === undefined ? {} : { seed: modelSeed }) },
    );
  },
);

// ---- bugs found (shrunk counterexamples, replayed with nothing stepped around) -------------------

/** A transaction inserting or updating these ids. */
const put = (...ids: number[]): Commit => new Commit(ids.map((id) => ({ id, del: false })));
const deliver = (n = 1): Deliver => new Deliver(n, false);
const stale = (n = 1): Deliver => new Deliver(n, true);
/** with the two sinks of the start, #0 is "feed" (list) and #1 "items" (string) */
const FEED = 0;
const ITEMS = 1;

// Found by this model on 0edbe38 (a stale keepalive moved a replaying sink; a keepalive moved the
// planned position back), fixed in 169072f: kept as regression tests.

test('a keepalive of the connection a restart is closing does not move the resumed sink past what it missed', async () => {
  await run([put(1), deliver(), new Pause(FEED), put(2), deliver(), new Resume(0), new Keepalive(true)], STRICT);
});

test('a keepalive behind what was planned (resent after a reconnect) does not hide what a paused sink missed', async () => {
  // items paused at the WAL's start, feed at t0; t1 planned for neither; the reconnected stream
  // resends t0 and its keepalive says t0's end: resumed, feed must still get t1
  await run(
    [new Keepalive(false), put(1), put(2), new Pause(ITEMS), deliver(), new Pause(FEED), deliver(), new Reconnect(), deliver(), new Keepalive(false), new Resume(0), deliver(), put(3), deliver()],
    STRICT,
  );
});

test('bug 1 (fixed): a sink paused before it has a position does not hold the slot', async () => {
  // feed is paused before anything was planned (position null); t0 is applied for items and the
  // slot is confirmed past it: resumed, feed replays from the slot and never gets t0
  await run([new Pause(FEED), put(1), deliver()], STRICT);
});

test('bug 1 (fixed): the same for a sink added paused', async () => {
  await run([new AddSink(true), put(1), deliver()], STRICT);
});

test('bug 1 (fixed): resumed with nothing to replay, such a sink stays catching-up', async () => {
  // feed (no position) paused; a keepalive moves the stream to the WAL's end and the slot with it;
  // at the end feed is resumed: catching-up until a transaction comes, which never does
  await run([new Pause(FEED), new Keepalive(false), deliver()], STRICT);
});

test('bug 2 (fixed): a second resume before the first restart delivered anything drops the first replay', async () => {
  // both paused at t0; t1 planned for neither. Resume feed: restart (generation 2, reset at 2).
  // The keepalive connects generation 2. Resume items: reset moved to 3 before generation 2
  // delivered anything. Generation 2, being closed, still hands over t1 and t2: no reset, t1 is
  // dropped as seen, feed takes t2 and its list has a gap.
  await run([put(1), deliver(), new Pause(FEED), new Pause(ITEMS), put(1), deliver(), new Resume(0), new Keepalive(false), new Resume(0), put(1), stale(2)], STRICT);
});

test('bug 3 (fixed): a resumed sink is caught up before what the closing connection planned after the resume', async () => {
  // feed paused at t0, items takes t1; Resume feed (catchUpTo = t1). The closing connection still
  // hands over t2 (items takes it; Redis is slow). Generation 2 resends t1: feed is caught up and
  // stops holding the slot; t2's batch is applied and the slot confirmed past t2, which feed has not
  // even received on generation 2 yet.
  await run([put(1), deliver(), put(1), new Pause(FEED), deliver(), new Resume(0), put(1), new RedisSpeed('stall'), stale(), deliver(), new Settle()], STRICT);
});

test('bug 4 (fixed): a batch in flight when a sink resumes confirms past its replay', async () => {
  // t0's batch (items only: feed is paused) is in flight. Resume feed: generation 2 resends t0, feed
  // takes it and is caught up (planned). Redis answers t0's first batch: confirmable sees feed
  // active and confirms t0, while feed's replay of t0 is still queued. A crash now loses t0 for feed.
  await run([new Keepalive(false), new RedisSpeed('stall'), put(1), new Pause(FEED), deliver(), new Resume(0), deliver(), new RedisSpeed('one')], STRICT);
});
