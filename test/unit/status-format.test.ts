import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatBytes,
  formatDuration,
  formatProblem,
  formatRate,
  ratesBetween,
  renderStatus,
  renderTable,
  type HealthView,
  type SinkView,
  type SourceView,
  type StatusInput,
} from '../../src/cli/status-format.js';

describe('formatBytes', () => {
  test('SI units, three significant digits at most, no trailing zeros', () => {
    const cases: [number, string][] = [
      [0, '0 B'],
      [1, '1 B'],
      [999, '999 B'],
      [1000, '1 kB'],
      [1500, '1.5 kB'],
      [12_345, '12.3 kB'],
      [123_456, '123 kB'],
      [999_999, '1 MB'],
      [1_000_000, '1 MB'],
      [10_000_000, '10 MB'],
      [100_000_000, '100 MB'],
      [2_345_678_901, '2.35 GB'],
      [5e12, '5 TB'],
      [-2048, '-2.05 kB'],
    ];
    for (const [n, want] of cases) assert.equal(formatBytes(n), want, String(n));
  });
  test('unknown is a dash', () => {
    assert.equal(formatBytes(null), '-');
    assert.equal(formatBytes(undefined), '-');
    assert.equal(formatBytes(Number.NaN), '-');
  });
});

describe('formatDuration and formatRate', () => {
  test('durations', () => {
    const cases: [number, string][] = [
      [0, '0 ms'],
      [35, '35 ms'],
      [999, '999 ms'],
      [999.7, '1 s'],
      [1000, '1 s'],
      [1234, '1.2 s'],
      [12_345, '12 s'],
      [59_700, '1 min 00 s'],
      [245_000, '4 min 05 s'],
      [7_380_000, '2 h 03 min'],
    ];
    for (const [ms, want] of cases) assert.equal(formatDuration(ms), want, String(ms));
    assert.equal(formatDuration(null), '-');
  });
  test('rates', () => {
    assert.equal(formatRate(0), '0/s');
    assert.equal(formatRate(4.54), '4.5/s');
    assert.equal(formatRate(1234.4), '1234/s');
    assert.equal(formatRate(null), '-');
  });
});

const sink = (over: Partial<SinkView> & { name: string }): SinkView => ({
  type: 'string',
  origin: 'config',
  redis: 'main',
  state: 'active',
  paused: false,
  position: '0/16B3F48:0',
  changes_applied: 0,
  failed_messages: 0,
  lag_ms: 0,
  lag_bytes: 0,
  held_wal_bytes: null,
  redis_error: null,
  backfills: [],
  ...over,
});

describe('ratesBetween', () => {
  test('changes per second from two reads; missing or reset counters are unknown', () => {
    const before = [sink({ name: 'a', changes_applied: 100 }), sink({ name: 'b', changes_applied: 50 }), sink({ name: 'c', changes_applied: 9 })];
    const after = [sink({ name: 'a', changes_applied: 350 }), sink({ name: 'b', changes_applied: 50 }), sink({ name: 'c', changes_applied: 2 }), sink({ name: 'd', changes_applied: 7 })];
    const r = ratesBetween(before, after, 500);
    assert.deepEqual([...r], [
      ['a', 500],
      ['b', 0],
      ['c', null],
      ['d', null],
    ]);
  });
});

test('renderTable pads every column but the last', () => {
  assert.deepEqual(renderTable(['A', 'BB', 'C'], [['xxx', 'y', 'z'], ['', 'long', '']]), ['A    BB    C', 'xxx  y     z', '     long']);
});

test('formatProblem names the Redis and its sinks', () => {
  assert.equal(formatProblem({ component: 'redis', redis: 'main', sinks: ['a', 'b'], reason: 'connection end' }), 'Redis "main" (sinks a, b): connection end');
  assert.equal(formatProblem({ component: 'redis', redis: 'main', sinks: ['a'], reason: 'x' }), 'Redis "main" (sink a): x');
  assert.equal(formatProblem({ component: 'source', reason: 'replication stream reconnecting' }), 'source: replication stream reconnecting');
});

describe('renderStatus', () => {
  const source = (over: Partial<SourceView> = {}): SourceView => ({
    slot: 'sluice',
    publication: 'sluice',
    state: 'streaming',
    confirmed_lsn: '0/16B3F48',
    current_lsn: '0/16B3F48',
    lag_bytes: 0,
    lag_ms: 12,
    retained_wal_bytes: 2_500_000,
    last_error: null,
    redis: [{ name: 'main', state: 'ready', lastError: null }],
    held_by_paused_sinks: [],
    ...over,
  });
  const ok = <T>(value: T): { ok: true; value: T } => ({ ok: true, value });
  const healthy: HealthView = { status: 'ok', state: 'streaming', source: 'streaming', problems: [], paused_sinks: [] };

  test('healthy: health, source, then one row per sink with its rate', () => {
    const input: StatusInput = {
      health: ok(healthy),
      source: ok(source()),
      sinks: ok([sink({ name: 'users', changes_applied: 10, failed_messages: 2, failed_total: 5 }), sink({ name: 'feed', type: 'list', origin: 'api', lag_ms: 1500, lag_bytes: 4200 })]),
      rates: new Map([['users', 12.34], ['feed', 0]]),
    };
    const text = renderStatus(input);
    assert.equal(
      text,
      [
        'health   ok',
        'source   slot "sluice" streaming, lag 0 B / 12 ms, WAL retained 2.5 MB, confirmed 0/16B3F48',
        '',
        'SINK   TYPE    ORIGIN  STATE   LAG    LAG BYTES  HELD WAL  RATE  FAILED NOW  FAILED TOTAL',
        'users  string  config  active  0 ms   0 B        -         12/s  2           5',
        'feed   list    api     active  1.5 s  4.2 kB     -         0/s   0           -',
        '',
      ].join('\n'),
    );
  });

  test('a paused sink shows the WAL it holds, in its row and as a warning naming it', () => {
    const text = renderStatus({
      health: ok({ ...healthy, paused_sinks: ['feed'] }),
      source: ok(source({ held_by_paused_sinks: [{ sink: 'feed', position: '0/1:0', held_wal_bytes: 3_400_000 }, { sink: 'new', position: null, held_wal_bytes: null }] })),
      sinks: ok([sink({ name: 'feed', state: 'paused', paused: true, lag_ms: null, lag_bytes: 3_400_000, held_wal_bytes: 3_400_000 }), sink({ name: 'new', state: 'starting' })]),
      rates: null,
    });
    assert.match(text, /^health {3}ok \(paused: feed\)$/m);
    assert.match(text, /^warning  paused sink "feed" holds 3\.4 MB of WAL in slot "sluice": Postgres keeps it until the sink is resumed or deleted$/m);
    assert.doesNotMatch(text, /sink "new"/, 'a sink that is starting is not paused');
    assert.match(text, /^feed +string +config +paused +- +3\.4 MB +3\.4 MB +- +0 +-$/m);
  });

  test('a held WAL not measured yet (negative or null) is said so, not printed as a number', () => {
    const text = renderStatus({
      health: ok(healthy),
      source: ok(source({ held_by_paused_sinks: [{ sink: 'feed', position: '0/1:0', held_wal_bytes: -120 }] })),
      sinks: ok([sink({ name: 'feed', state: 'paused', paused: true, lag_ms: null, lag_bytes: -120, held_wal_bytes: -120 })]),
      rates: null,
    });
    assert.match(text, /paused sink "feed" holds WAL \(how much is not measured yet\)/);
    assert.match(text, /^feed +string +config +paused +- +- +- +- +0 +-$/m);
  });

  test('failed messages: waiting now and since start; a full store is marked and warned of', () => {
    const store = { messages: 10_000, bytes: 3_200_000, max_messages: 10_000, max_bytes: 67_108_864, full: true, dropped: 3 };
    const text = renderStatus({
      health: ok(healthy),
      source: ok(source()),
      sinks: ok([sink({ name: 'users', failed_messages: 10_000, failed_total: 10_003, failed_store: store }), sink({ name: 'feed', failed_messages: 1, failed_total: 4, failed_store: { ...store, messages: 1, bytes: 900, full: false, dropped: 0 } })]),
      rates: null,
    });
    assert.match(text, /^users +string +config +active +0 ms +0 B +- +- +10000 \(full\) +10003$/m);
    assert.match(text, /^feed +string +config +active +0 ms +0 B +- +- +1 +4$/m);
    assert.match(text, /^warning  failed messages of sink "users" are full \(10000 of 10000 messages, 3\.2 MB of 67\.1 MB\); 3 failure\(s\) since start were not stored, only logged: retry or discard them \(sluice messages\), or raise failed_max_messages \/ failed_max_bytes$/m);
    assert.doesNotMatch(text, /sink "feed" are/);
  });

  test('unhealthy: each problem on its own line; backfills and their errors under the table', () => {
    const text = renderStatus({
      health: ok({
        status: 'unhealthy',
        problems: [
          { component: 'redis', redis: 'main', sinks: ['users'], reason: 'connection end: connect ECONNREFUSED 127.0.0.1:6390' },
          { component: 'source', reason: 'replication stream reconnecting' },
        ],
        paused_sinks: [],
      }),
      source: ok(source({ redis: [{ name: 'main', state: 'retrying', lastError: 'Connection is closed.' }] })),
      sinks: ok([
        sink({ name: 'users', state: 'retrying', backfills: null, backfills_error: 'Redis "main" did not answer within 1000 ms' }),
        sink({ name: 'items', backfills: [{ table: 'public.items', state: 'running', rows: 1200, estimated_total: 200_000, percent: 0.6, rate: 5000, eta_seconds: 40 }] }),
        sink({ name: 'retried', backfills: [{ table: 'public.r', state: 'running', rows: 1000, estimated_total: 2000, percent: 50, rate: 0, eta_seconds: null, attempts: 2, next_retry_at: '2026-11-30T20:00:04.000Z', error: 'terminating connection due to administrator command' }] }),
      ]),
      rates: null,
    });
    const lines = text.split('\n');
    assert.deepEqual(lines.slice(0, 3), [
      'health   unhealthy, 2 problems:',
      '         - Redis "main" (sink users): connection end: connect ECONNREFUSED 127.0.0.1:6390',
      '         - source: replication stream reconnecting',
    ]);
    assert.ok(lines.includes('redis    "main" writes retrying: Connection is closed.'), text);
    assert.ok(lines.includes('  users: backfills unknown: Redis "main" did not answer within 1000 ms'), text);
    assert.ok(lines.includes('  items: backfill of public.items running, 1200/200000 rows (0.6%), 5000 rows/s, ETA 40 s'), text);
    assert.ok(lines.includes('  retried: backfill of public.r running, 1000/2000 rows (50%), 0 rows/s, 2 failed attempts, next at 2026-11-30T20:00:04.000Z: terminating connection due to administrator command'), text);
  });

  test('a part that could not be read is said so; the rest is still shown', () => {
    const text = renderStatus({ health: { ok: false, error: 'the API answered 500: boom' }, source: ok(source()), sinks: ok([]), rates: null });
    assert.match(text, /^health {3}unknown: the API answered 500: boom$/m);
    assert.match(text, /^source {3}slot "sluice"/m);
    assert.match(text, /^no sinks$/m);
  });
});
