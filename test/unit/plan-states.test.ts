// The state tables of src/plan/states.ts, pair by pair, as in ElectricSQL's
// state-transition-table: every (state, event) of the pipeline and of a sink has its expected
// outcome written below, independently of the tables, and the two must agree. "—" means the event
// means nothing in that state (the state does not change).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  nextPipelineState,
  nextSinkState,
  PIPELINE_TRANSITIONS,
  SINK_TRANSITIONS,
  sinkState,
  type PipelineEvent,
  type PipelineState,
  type SinkEvent,
  type SinkState,
} from '../../src/plan/states.js';
import { confirmable, sinkRuntime, type SinkRuntime } from '../../src/plan/route.js';
import type { Sink } from '../../src/sinks/sink.js';

const PIPELINE_STATES: readonly PipelineState[] = ['starting', 'streaming', 'draining', 'stopped', 'failed'];
const PIPELINE_EVENTS: readonly PipelineEvent[] = ['started', 'stop', 'drained', 'fatal'];
const SINK_STATES: readonly SinkState[] = ['starting', 'active', 'paused', 'catching-up'];
const SINK_EVENTS: readonly SinkEvent[] = ['ready', 'ready-paused', 'pause', 'resume', 'resume-replay', 'caught-up'];

const SAME = '—';

const PIPELINE_EXPECTED: Record<PipelineState, Record<PipelineEvent, PipelineState | typeof SAME>> = {
  starting:  { started: 'streaming', stop: 'stopped',  drained: SAME,      fatal: 'failed' },
  streaming: { started: SAME,        stop: 'draining', drained: SAME,      fatal: 'failed' },
  draining:  { started: SAME,        stop: SAME,       drained: 'stopped', fatal: 'failed' },
  failed:    { started: SAME,        stop: 'stopped',  drained: 'stopped', fatal: SAME },
  stopped:   { started: SAME,        stop: SAME,       drained: SAME,      fatal: SAME },
};

const SINK_EXPECTED: Record<SinkState, Record<SinkEvent, SinkState | typeof SAME>> = {
  starting:      { ready: 'active', 'ready-paused': 'paused', pause: SAME,     resume: SAME,     'resume-replay': 'catching-up', 'caught-up': SAME },
  active:        { ready: SAME,     'ready-paused': SAME,     pause: 'paused', resume: SAME,     'resume-replay': SAME,          'caught-up': SAME },
  paused:        { ready: SAME,     'ready-paused': SAME,     pause: SAME,     resume: 'active', 'resume-replay': 'catching-up', 'caught-up': SAME },
  'catching-up': { ready: SAME,     'ready-paused': SAME,     pause: 'paused', resume: SAME,     'resume-replay': SAME,          'caught-up': 'active' },
};

test('pipeline: every (state, event) pair gives the state the table says', () => {
  for (const state of PIPELINE_STATES) {
    for (const event of PIPELINE_EVENTS) {
      const want = PIPELINE_EXPECTED[state][event];
      assert.equal(nextPipelineState(state, event), want === SAME ? state : want, `${state} --${event}-->`);
    }
  }
});

test('pipeline: the table names only known states and events, and nothing leads back to starting', () => {
  assert.deepEqual(Object.keys(PIPELINE_TRANSITIONS).sort(), [...PIPELINE_STATES].sort());
  for (const [state, row] of Object.entries(PIPELINE_TRANSITIONS)) {
    for (const [event, to] of Object.entries(row)) {
      assert.ok(PIPELINE_EVENTS.includes(event as PipelineEvent), `${state}: unknown event ${event}`);
      assert.ok(PIPELINE_STATES.includes(to), `${state} --${event}--> unknown state ${to}`);
      assert.notEqual(to, 'starting', `${state} --${event}--> starting`);
    }
  }
});

test('pipeline: every state is reachable from starting and reaches stopped, which is final', () => {
  const reach = (from: PipelineState): Set<PipelineState> => {
    const seen = new Set<PipelineState>([from]);
    const todo = [from];
    for (let s = todo.pop(); s !== undefined; s = todo.pop()) {
      for (const e of PIPELINE_EVENTS) {
        const next = nextPipelineState(s, e);
        if (!seen.has(next)) {
          seen.add(next);
          todo.push(next);
        }
      }
    }
    return seen;
  };
  assert.deepEqual([...reach('starting')].sort(), [...PIPELINE_STATES].sort());
  for (const s of PIPELINE_STATES) assert.ok(reach(s).has('stopped'), `${s} cannot reach stopped`);
  for (const e of PIPELINE_EVENTS) assert.equal(nextPipelineState('stopped', e), 'stopped', `stopped --${e}-->`);
});

test('sink: every (state, event) pair gives the state the table says', () => {
  for (const state of SINK_STATES) {
    for (const event of SINK_EVENTS) {
      const want = SINK_EXPECTED[state][event];
      assert.equal(nextSinkState(state, event), want === SAME ? state : want, `${state} --${event}-->`);
    }
  }
});

test('sink: the table names only known states and events, and nothing leads back to starting', () => {
  assert.deepEqual(Object.keys(SINK_TRANSITIONS).sort(), [...SINK_STATES].sort());
  for (const [state, row] of Object.entries(SINK_TRANSITIONS)) {
    for (const [event, to] of Object.entries(row)) {
      assert.ok(SINK_EVENTS.includes(event as SinkEvent), `${state}: unknown event ${event}`);
      assert.ok(SINK_STATES.includes(to), `${state} --${event}--> unknown state ${to}`);
      assert.notEqual(to, 'starting', `${state} --${event}--> starting`);
    }
  }
});

test('sink: active is reachable from every state, and every state from starting', () => {
  for (const from of SINK_STATES) {
    const seen = new Set<SinkState>([from]);
    const todo = [from];
    for (let s = todo.pop(); s !== undefined; s = todo.pop()) {
      for (const e of SINK_EVENTS) {
        const next = nextSinkState(s, e);
        if (!seen.has(next)) {
          seen.add(next);
          todo.push(next);
        }
      }
    }
    assert.ok(seen.has('active'), `${from} cannot become active`);
    if (from === 'starting') assert.deepEqual([...seen].sort(), [...SINK_STATES].sort());
  }
});

// ---- sinkState: the state read from a SinkRuntime's fields ----------------------------------

const NOOP_SINK: Sink = { name: 's', type: 'list', plan: () => undefined };

/** A SinkRuntime in `state`, at a position (the runtime fields route.ts keeps). */
function runtimeIn(state: SinkState, lsn = 0x500n): SinkRuntime {
  const s = sinkRuntime({ sink: NOOP_SINK, redis: 'main', tables: ['public.items'], actions: ['insert'] }, { lsn, idx: null });
  if (state === 'starting' || state === 'paused') s.hold = state;
  if (state === 'catching-up') s.catchUpTo = { lsn: lsn + 0x100n, idx: null };
  return s;
}

test('sinkState: the hold wins, then catchUpTo; with neither the sink is active', () => {
  assert.equal(sinkState({ hold: null, catchUpTo: null }), 'active');
  assert.equal(sinkState({ hold: null, catchUpTo: { lsn: 1n, idx: null } }), 'catching-up');
  assert.equal(sinkState({ hold: 'paused', catchUpTo: null }), 'paused');
  assert.equal(sinkState({ hold: 'paused', catchUpTo: { lsn: 1n, idx: null } }), 'paused');
  assert.equal(sinkState({ hold: 'starting', catchUpTo: null }), 'starting');
  assert.equal(sinkState({ hold: 'starting', catchUpTo: { lsn: 1n, idx: null } }), 'starting');
  for (const s of SINK_STATES) assert.equal(sinkState(runtimeIn(s)), s);
});

test('a sink in any state holds the slot at what it has in Redis; one that took part in the batch does not hold it back', () => {
  const batchEnd = 0x900n;
  for (const state of SINK_STATES) {
    const behind = runtimeIn(state, 0x500n);
    assert.equal(confirmable(batchEnd, [behind]), 0x500n, `${state}: held at its position`);
    const current = runtimeIn(state, 0x500n);
    current.written = { lsn: batchEnd, idx: null };
    assert.equal(confirmable(batchEnd, [current]), batchEnd, `${state}: written with the batch`);
  }
});
