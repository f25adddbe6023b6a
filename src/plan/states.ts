/**
 * The states of the pipeline and of each sink, and what moves them: pure, so the tables below
 * are the whole truth and a test walks every (state, event) pair.
 *
 * Pipeline:
 *
 *   starting ──started──► streaming ──stop──► draining ──drained──► stopped
 *      │                      │                   │                    ▲
 *      └───────fatal──────────┴──► failed ────────┴────────stop────────┘
 *
 *   fatal: the stream cannot go on (bytes that do not decode, a bug outside a sink's planning).
 *   Pausing reading (backpressure, row lookups, draining) is not a state.
 *
 * Sink:
 *
 *   starting ──ready──► active ──pause──► paused ──resume──► catching-up ──caught-up──► active
 *                        ▲  │                                      │
 *                        │  └─────────────pause──────────────◄─────┘ (pause while catching up)
 *                        └──────────── resume (nothing missed) ─ paused
 *
 *   starting / paused / catching-up hold the slot at the sink's position: Postgres keeps the WAL
 *   it has not applied. Deleting a sink removes it in any state.
 */
export type PipelineState = 'starting' | 'streaming' | 'draining' | 'stopped' | 'failed';
export type PipelineEvent = 'started' | 'stop' | 'drained' | 'fatal';

export const PIPELINE_TRANSITIONS: Readonly<Record<PipelineState, Partial<Record<PipelineEvent, PipelineState>>>> = {
  starting: { started: 'streaming', fatal: 'failed', stop: 'stopped' },
  streaming: { stop: 'draining', fatal: 'failed' },
  draining: { drained: 'stopped', fatal: 'failed' },
  failed: { stop: 'stopped', drained: 'stopped' },
  stopped: {},
};

/** The state after `event`; the same state when the event means nothing there (a second stop). */
export function nextPipelineState(state: PipelineState, event: PipelineEvent): PipelineState {
  return PIPELINE_TRANSITIONS[state][event] ?? state;
}

export type SinkState = 'starting' | 'active' | 'paused' | 'catching-up';
/** `resume-replay`: resumed after the stream went past it (it replays); `resume`: it missed nothing */
export type SinkEvent = 'ready' | 'ready-paused' | 'pause' | 'resume' | 'resume-replay' | 'caught-up';

export const SINK_TRANSITIONS: Readonly<Record<SinkState, Partial<Record<SinkEvent, SinkState>>>> = {
  starting: { ready: 'active', 'ready-paused': 'paused', 'resume-replay': 'catching-up' },
  active: { pause: 'paused' },
  paused: { resume: 'active', 'resume-replay': 'catching-up' },
  'catching-up': { 'caught-up': 'active', pause: 'paused' },
};

export function nextSinkState(state: SinkState, event: SinkEvent): SinkState {
  return SINK_TRANSITIONS[state][event] ?? state;
}

/** A sink's state from its runtime fields (see route.ts SinkRuntime). */
export function sinkState(s: { hold: 'paused' | 'starting' | null; catchUpTo: unknown }): SinkState {
  if (s.hold !== null) return s.hold;
  return s.catchUpTo !== null ? 'catching-up' : 'active';
}
