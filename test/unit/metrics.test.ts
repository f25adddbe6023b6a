// The metrics: what they measure (apply latency, Redis errors and reconnects, paused sinks,
// backfill progress), that docs/operations.md documents every one of them (name, type, labels),
// and that the Grafana dashboard of docs/ only queries metrics that exist.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { Metrics } from '../../src/metrics.js';
import { Applier } from '../../src/runtime/applier.js';
import { Batcher } from '../../src/plan/batcher.js';
import { Planner } from '../../src/plan/planner.js';
import { Windows } from '../../src/plan/windows.js';
import type { Lane } from '../../src/redis/apply-lane.js';
import type { ChangeSource } from '../../src/pg/change-stream.js';
import { microsSince2000 } from '../../src/core/time.js';
import { progressRatio } from '../../src/backfill/backfill-manager.js';
import { inserts, runtime, txn } from './support/plan-fixtures.js';

interface RegisteredMetric {
  name: string;
  type: string;
  labelNames: string[];
}

const registered = (m: Metrics): RegisteredMetric[] => m.registry.getMetricsAsArray() as unknown as RegisteredMetric[];

async function sample(m: Metrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const all = await m.registry.getMetricsAsJSON();
  for (const metric of all) {
    for (const v of (metric as unknown as { values: { metricName?: string; labels: Record<string, string | number>; value: number }[] }).values) {
      const n = v.metricName ?? metric.name;
      if (n === name && Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)) return v.value;
    }
  }
  return undefined;
}

describe('apply latency', () => {
  function setup() {
    const metrics = new Metrics(false);
    const sinks = [runtime('cache', { type: 'string' }), runtime('feed', { type: 'list', key: 'feed', actions: ['insert'] }, { redis: 'events' }), runtime('idle', { type: 'string', tables: ['orders'] })];
    const planner = new Planner(new Batcher({ maxCommands: 10_000, maxBytes: 1e7 }, () => 'b'), new Windows(), { failed: () => undefined, truncate: () => undefined, chunk: () => undefined }, () => sinks, () => 0n);
    const acknowledged: string[] = [];
    const lane = (name: string): Lane => ({
      name,
      redis: null as never,
      state: 'ready',
      lastError: null,
      retries: 0,
      behindCheck: true,
      load: () => Promise.resolve(new Map()),
      apply: () => {
        acknowledged.push(name);
        return Promise.resolve({ rejected: [], unsure: [] });
      },
      forget: () => Promise.resolve(),
      stop: () => undefined,
    });
    const stream = { confirmedLsn: 0n, confirm: () => undefined } as unknown as ChangeSource;
    const applier = new Applier(new Map([['main', lane('main')], ['events', lane('events')]]), stream, planner, metrics);
    return { metrics, sinks, planner, applier, acknowledged };
  }

  test('one observation per transaction and sink that took changes, from its commit to Redis acknowledging', async () => {
    const { metrics, sinks, planner, applier } = setup();
    const now = Date.now();
    planner.transaction(txn(0x100n, inserts(2), { commitTimeMicros: microsSince2000(now - 2000) }), 0);
    const batch = planner.transaction(txn(0x200n, inserts(1, 0, 10), { commitTimeMicros: microsSince2000(now - 500) }), 0);
    assert.deepEqual(batch.commitTimes.get('cache')?.length, 2);
    assert.equal(batch.commitTimes.has('idle'), false, 'a sink that took no change has nothing to observe');
    await applier.apply(batch, sinks);
    assert.equal(await sample(metrics, 'sluice_apply_latency_seconds_count', { sink: 'cache' }), 2);
    assert.equal(await sample(metrics, 'sluice_apply_latency_seconds_count', { sink: 'feed' }), 2);
    assert.equal(await sample(metrics, 'sluice_apply_latency_seconds_count', { sink: 'idle' }), undefined);
    const sum = (await sample(metrics, 'sluice_apply_latency_seconds_sum', { sink: 'cache' }))!;
    assert.ok(sum >= 2.5 && sum < 4, `sum of 2 s and 0.5 s ago: ${sum}`);
    assert.equal(await sample(metrics, 'sluice_apply_latency_seconds_bucket', { sink: 'cache', le: '1' }), 1);
    assert.equal(await sample(metrics, 'sluice_changes_total', { sink: 'cache', action: 'insert' }), 3);
  });

  test('a clock behind Postgres never gives a negative latency', async () => {
    const metrics = new Metrics(false);
    metrics.observeApplyLatency('s', Date.now() + 60_000);
    assert.equal(await sample(metrics, 'sluice_apply_latency_seconds_sum', { sink: 's' }), 0);
  });
});

describe('Redis connections, paused sinks, backfills', () => {
  test('errors (Cluster node errors too) and reconnects are counted per connection; the series exist from the start', async () => {
    const metrics = new Metrics(false);
    const client = new EventEmitter();
    metrics.watchRedis('cache', client);
    assert.equal(await sample(metrics, 'sluice_redis_errors_total', { redis: 'cache' }), 0);
    assert.equal(await sample(metrics, 'sluice_redis_reconnects_total', { redis: 'cache' }), 0);
    client.emit('ready'); // the first connection is no reconnect
    client.emit('error', new Error('ECONNREFUSED'));
    client.emit('error', new Error('ECONNREFUSED'));
    client.emit('node error', new Error('x'), '127.0.0.1:7000');
    client.emit('ready');
    assert.equal(await sample(metrics, 'sluice_redis_errors_total', { redis: 'cache' }), 3);
    assert.equal(await sample(metrics, 'sluice_redis_reconnects_total', { redis: 'cache' }), 1);
  });

  test('sluice_sink_paused is read at each scrape: 1 paused, 0 otherwise, a deleted sink is gone', async () => {
    const metrics = new Metrics(false);
    let sinks = [{ name: 'a', paused: false }, { name: 'b', paused: true }];
    metrics.trackSinks(() => sinks);
    assert.match(await metrics.registry.metrics(), /sluice_sink_paused\{sink="b"\} 1/);
    assert.equal(await sample(metrics, 'sluice_sink_paused', { sink: 'a' }), 0);
    sinks = [{ name: 'a', paused: true }];
    const text = await metrics.registry.metrics();
    assert.match(text, /sluice_sink_paused\{sink="a"\} 1/);
    assert.doesNotMatch(text, /sink="b"/);
  });

  test('backfill progress: rows over the estimate, capped at 1, 1 once done', () => {
    assert.equal(progressRatio({ rows: 50, estimated_total: 200, state: 'running' }), 0.25);
    assert.equal(progressRatio({ rows: 250, estimated_total: 200, state: 'running' }), 1);
    assert.equal(progressRatio({ rows: 0, estimated_total: null, state: 'running' }), 0);
    assert.equal(progressRatio({ rows: 0, estimated_total: 0, state: 'done' }), 1);
  });
});

// ---------------------------------------------------------------------------------------------
// docs/operations.md, section "Metrics": | `name` | type | `label`, `label` | meaning |

const OPERATIONS = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
const WILDCARD = 'sluice_process_*';

interface DocRow {
  name: string;
  type: string;
  labels: string[];
}

function documentedMetrics(): DocRow[] {
  const at = OPERATIONS.search(/^#+ Metrics$/m);
  assert.ok(at >= 0, 'docs/operations.md has a "Metrics" section');
  const rest = OPERATIONS.slice(at).split('\n').slice(1);
  const end = rest.findIndex((l) => /^#+ /.test(l));
  const rows: DocRow[] = [];
  for (const line of end < 0 ? rest : rest.slice(0, end)) {
    const cells = line.trim().split('|').slice(1, -1).map((c) => c.trim());
    const name = /^`(sluice_[a-z0-9_]+\*?)`$/.exec(cells[0] ?? '')?.[1];
    if (name === undefined) continue;
    const labels = cells[2] === '—' ? [] : (cells[2] ?? '').split(',').map((l) => /^`([a-z_]+)`$/.exec(l.trim())?.[1] ?? `unreadable label cell "${cells[2]}"`);
    rows.push({ name, type: cells[1] ?? '', labels });
  }
  return rows;
}

describe('docs/operations.md documents every metric', () => {
  const metrics = new Metrics();
  const own = registered(metrics).filter((m) => !m.name.startsWith('sluice_process_'));
  const rows = documentedMetrics();

  test('the documented names are the registry\'s names', () => {
    const documented = rows.map((r) => r.name).filter((n) => n !== WILDCARD).sort();
    assert.deepEqual(documented, own.map((m) => m.name).sort());
    assert.ok(rows.some((r) => r.name === WILDCARD), `a row for ${WILDCARD}`);
    assert.ok(registered(metrics).some((m) => m.name.startsWith('sluice_process_')), 'the default metrics carry the documented prefix');
  });

  test('each with its type and labels', () => {
    const problems: string[] = [];
    for (const m of own) {
      const row = rows.find((r) => r.name === m.name);
      if (!row) continue;
      if (row.type !== m.type) problems.push(`${m.name}: documented as ${row.type}, is a ${m.type}`);
      if (row.labels.join(',') !== m.labelNames.join(',')) problems.push(`${m.name}: documented labels [${row.labels.join(', ')}], has [${m.labelNames.join(', ')}]`);
    }
    assert.deepEqual(problems, []);
  });
});

// ---------------------------------------------------------------------------------------------
// docs/grafana-dashboard.json

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
}

describe('docs/grafana-dashboard.json', () => {
  const text = readFileSync(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8');
  const dashboard = JSON.parse(text) as Dashboard;
  const metrics = new Metrics();
  const byName = new Map(registered(metrics).map((m) => [m.name, m]));
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');

  /** The metric a series name belongs to: itself, or a histogram's _bucket/_sum/_count. */
  function metricOf(series: string): string | undefined {
    if (byName.has(series)) return series;
    const m = /^(.*)_(bucket|sum|count)$/.exec(series);
    return m && byName.get(m[1]!)?.type === 'histogram' ? m[1] : undefined;
  }
  const seriesIn = (expr: string): string[] => expr.match(/\bsluice_[a-z0-9_]+/g) ?? [];

  test('operations.md links to it', () => {
    assert.match(OPERATIONS, /\]\(grafana-dashboard\.json\)/);
  });

  test('a Prometheus data source variable, used by every panel and query', () => {
    const ds = dashboard.templating.list.find((v) => v.type === 'datasource');
    assert.ok(ds, 'a datasource variable');
    assert.equal(ds.query, 'prometheus');
    for (const p of panels) {
      assert.equal(p.datasource?.uid, `\${${ds.name}}`, `panel "${p.title}"`);
      for (const t of p.targets ?? []) assert.equal(t.datasource?.uid, `\${${ds.name}}`, `a query of panel "${p.title}"`);
    }
  });

  test('every panel queries something; panel ids are unique', () => {
    for (const p of panels) assert.ok((p.targets ?? []).some((t) => (t.expr ?? '') !== ''), `panel "${p.title}" has a query`);
    const ids = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
  });

  test('each panel\'s expressions (and the variables\' queries) name only metrics that exist', () => {
    const unknown: string[] = [];
    for (const p of panels) for (const t of p.targets ?? []) for (const s of seriesIn(t.expr ?? '')) if (!metricOf(s)) unknown.push(`panel "${p.title}": ${s}`);
    for (const v of dashboard.templating.list) for (const s of seriesIn(JSON.stringify(v.query))) if (!metricOf(s)) unknown.push(`variable ${v.name}: ${s}`);
    assert.deepEqual(unknown, []);
  });

  test('it shows throughput, apply latency p50/p99, lag, retained and held WAL, failed messages, backfill progress, Redis errors and reconnects, paused sinks', () => {
    const exprs = panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
    const used = new Set(exprs.flatMap(seriesIn).map(metricOf));
    for (const name of [
      'sluice_changes_total',
      'sluice_apply_latency_seconds',
      'sluice_lag_bytes',
      'sluice_lag_seconds',
      'sluice_slot_retained_wal_bytes',
      'sluice_sink_held_wal_bytes',
      'sluice_failed_messages_total',
      'sluice_backfill_progress_ratio',
      'sluice_redis_errors_total',
      'sluice_redis_reconnects_total',
      'sluice_sink_paused',
    ]) {
      assert.ok(used.has(name), `a panel uses ${name}`);
    }
    assert.ok(exprs.some((e) => e.includes('histogram_quantile(0.5,') && e.includes('sluice_apply_latency_seconds_bucket')), 'apply latency p50');
    assert.ok(exprs.some((e) => e.includes('histogram_quantile(0.99,') && e.includes('sluice_apply_latency_seconds_bucket')), 'apply latency p99');
  });
});
