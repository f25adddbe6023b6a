// Logs: one JSON object per line, pretty only at a terminal, and row values only with
// --log-values (the failed-message reasons that may quote them: functions' errors, internal
// errors, a zset score that is not a number).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, MayHoldValues, prettyWanted, revealOrRedact, VALUES_HIDDEN, withoutDetail } from '../../src/util/log.js';
import { Metrics } from '../../src/metrics.js';
import { planEvents } from '../../src/runtime/plan-events.js';
import { Batcher } from '../../src/plan/batcher.js';
import { Planner } from '../../src/plan/planner.js';
import { Windows } from '../../src/plan/windows.js';
import { sinkRuntime, type SinkRuntime } from '../../src/plan/route.js';
import { sinkSchema, type SinkConfig } from '../../src/config/schema.js';
import { createSink } from '../../src/sinks/index.js';
import { SinkFunctions } from '../../src/functions/index.js';
import { insertChange } from './support/tables.js';
import { products, txn } from './support/plan-fixtures.js';

/** A logger writing into an array of lines. */
function capture(opts: { values?: boolean; pretty?: boolean } = {}) {
  const lines: string[] = [];
  let buf = '';
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      buf += chunk.toString('utf8');
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      cb();
    },
  });
  return { log: createLogger('debug', { ...opts, destination }), lines };
}

const SECRET = 'alice@example.com';

describe('log lines', () => {
  test('one JSON object per line, with level, time, svc and msg', () => {
    const { log, lines } = capture();
    log.info({ sink: 'users', lsn: '0/16B3748' }, 'first');
    log.warn({ nested: { a: [1, 2] } }, 'second\nwith a newline');
    assert.equal(lines.length, 2);
    const [a, b] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(a!.msg, 'first');
    assert.equal(a!.sink, 'users');
    assert.equal(a!.svc, 'sluice');
    assert.equal(a!.level, 30);
    assert.match(String(a!.time), /^\d{4}-\d\d-\d\dT/);
    assert.equal(b!.msg, 'second\nwith a newline');
  });

  test('pretty lines are not JSON and still carry the message', () => {
    const { log, lines } = capture({ pretty: true });
    log.info({ sink: 'users' }, 'hello there');
    assert.ok(lines.length >= 1);
    assert.throws(() => JSON.parse(lines[0]!));
    assert.match(lines.join('\n'), /INFO.*hello there/);
  });

  test('pretty only at a terminal, never in CI or a pipe', () => {
    assert.equal(prettyWanted({ isTTY: true }, {}), true);
    assert.equal(prettyWanted({ isTTY: false }, {}), false);
    assert.equal(prettyWanted({}, {}), false);
    assert.equal(prettyWanted({ isTTY: true }, { CI: 'true' }), false);
    assert.equal(prettyWanted({ isTTY: true }, { CI: '1' }), false);
    assert.equal(prettyWanted({ isTTY: true }, { CI: 'false' }), true);
    assert.equal(prettyWanted({ isTTY: true }, { SLUICE_LOG_FORMAT: 'json' }), false);
  });
});

describe('row values in logs', () => {
  test('MayHoldValues: redacted unless the logger logs values; JSON.stringify redacts too', () => {
    const v = new MayHoldValues(`bad ${SECRET}`, 'bad [hidden]');
    assert.equal(JSON.stringify({ v }), '{"v":"bad [hidden]"}');
    assert.equal(String(v), 'bad [hidden]');
    assert.deepEqual(revealOrRedact({ a: v, b: { c: [v] }, d: 1 }, false), { a: 'bad [hidden]', b: { c: ['bad [hidden]'] }, d: 1 });
    assert.deepEqual(revealOrRedact({ a: v }, true), { a: `bad ${SECRET}` });

    const hidden = capture();
    hidden.log.warn({ reason: v, deep: { reason: v } }, 'x');
    assert.doesNotMatch(hidden.lines.join('\n'), new RegExp(SECRET));
    const shown = capture({ values: true });
    shown.log.warn({ reason: v, deep: { reason: v } }, 'x');
    const line = JSON.parse(shown.lines[0]!) as { reason: string; deep: { reason: string } };
    assert.equal(line.reason, `bad ${SECRET}`);
    assert.equal(line.deep.reason, `bad ${SECRET}`);
  });

  test('withoutDetail keeps the lead and hides what follows the first ": "', () => {
    assert.equal(withoutDetail(`transform threw: Error: no ${SECRET}`), `transform threw: ${VALUES_HIDDEN}`);
    assert.equal(withoutDetail('transform timed out after 50 ms (took 80 ms)'), 'transform timed out after 50 ms (took 80 ms)');
  });

  function plannerWith(sink: SinkRuntime, values: boolean) {
    const { log, lines } = capture({ values });
    const metrics = new Metrics(false);
    const planner = new Planner(new Batcher({ maxCommands: 1000, maxBytes: 1e7 }, () => 'b'), new Windows(), planEvents(metrics, log), () => [sink], () => 0n);
    return { planner, lines, metrics };
  }

  function functionSink(): { sink: SinkRuntime; dispose(): void } {
    const cfg = sinkSchema.parse({ name: 'users', type: 'string', tables: ['products'], transform: 'function transform(action, record) { throw new Error("no " + record.name) }' }) as SinkConfig;
    const functions = SinkFunctions.fromConfig(cfg, process.cwd());
    return { sink: sinkRuntime({ sink: createSink(cfg), redis: 'main', tables: cfg.tables, actions: cfg.actions, functions }, null, null), dispose: () => functions.dispose() };
  }

  for (const values of [false, true]) {
    test(`a function's error quoting a row value: ${values ? 'logged with --log-values' : 'hidden without --log-values'}; the failed message keeps it`, () => {
      const { sink, dispose } = functionSink();
      try {
        const { planner, lines } = plannerWith(sink, values);
        const batch = planner.transaction(txn(0x100n, [insertChange(products, { id: '1', name: SECRET }, 0)]), 0);
        const stored = batch.parts.get('main')!.commands.find((c) => c[0] === 'HSET')!;
        assert.match(stored[3]!, new RegExp(SECRET), 'the failed message keeps the whole reason');
        const failed = lines.map((l) => JSON.parse(l) as { msg: string; reason: string }).find((l) => l.msg === 'message failed')!;
        if (values) assert.equal(failed.reason, `transform threw: Error: no ${SECRET}`);
        else {
          assert.equal(failed.reason, `transform threw: ${VALUES_HIDDEN}`);
          assert.doesNotMatch(lines.join('\n'), new RegExp(SECRET));
        }
      } finally {
        dispose();
      }
    });
  }

  test('a zset score that is not a number: the value only with --log-values', () => {
    const cfg = sinkSchema.parse({ name: 'ranks', type: 'zset', tables: ['products'], key: 'ranks', member: '{id}', score: 'name' }) as SinkConfig;
    for (const values of [false, true]) {
      const sink = sinkRuntime({ sink: createSink(cfg), redis: 'main', tables: cfg.tables, actions: cfg.actions }, null, null);
      const { planner, lines } = plannerWith(sink, values);
      planner.transaction(txn(0x100n, [insertChange(products, { id: '1', name: SECRET }, 0)]), 0);
      const failed = lines.map((l) => JSON.parse(l) as { msg: string; reason: string }).find((l) => l.msg === 'message failed')!;
      if (values) assert.match(failed.reason, new RegExp(SECRET));
      else assert.equal(failed.reason, 'the score column "name" is not a number; a sorted set needs a number');
    }
  });

  test('an internal planning error: its message only with --log-values', () => {
    const base = createSink(sinkSchema.parse({ name: 'users', type: 'string', tables: ['products'] }) as SinkConfig);
    const broken = { ...base, plan: (): void => { throw new Error(`bug near ${SECRET}`); } };
    const sink = sinkRuntime({ sink: broken, redis: 'main', tables: ['public.products'], actions: ['insert'] }, null, null);
    const { planner, lines } = plannerWith(sink, false);
    planner.transaction(txn(0x100n, [insertChange(products, { id: '1', name: 'x' }, 0)]), 0);
    assert.doesNotMatch(lines.join('\n'), new RegExp(SECRET));
    assert.match(lines.join('\n'), /internal error while planning this message/);
  });

  test('reasons without values are logged as they are', () => {
    const cfg = sinkSchema.parse({ name: 'users', type: 'string', tables: ['products'], key: 'u:{name}' }) as SinkConfig;
    const sink = sinkRuntime({ sink: createSink(cfg), redis: 'main', tables: cfg.tables, actions: cfg.actions }, null, null);
    const { planner, lines, metrics } = plannerWith(sink, false);
    planner.transaction(txn(0x100n, [insertChange(products, { id: '1', name: null }, 0)]), 0);
    const failed = lines.map((l) => JSON.parse(l) as { msg: string; reason: string; sink: string }).find((l) => l.msg === 'message failed')!;
    assert.equal(failed.reason, 'column "name" is NULL, so the template cannot be rendered');
    assert.equal(failed.sink, 'users');
    return metrics.failed.get().then((m) => assert.equal(m.values[0]?.value, 1));
  });
});
