import type { ApiHealth, ApiSink } from '../api.js';
import { LagChart, LatencyChart, ThroughputChart, WalChart } from '../charts.js';
import { Card, ErrorNote, Pill, Progress, Stat } from '../components/ui.js';
import { bytes, count, ms, rate } from '../format.js';
import { useLive } from '../live.js';
import { href } from '../router.js';

/** Why a sink is not writing, in one sentence; null when it is fine. */
export function sinkReason(sink: ApiSink, health: ApiHealth | undefined): string | null {
  const problems = (health?.problems ?? []).filter((p) => p.sinks?.includes(sink.name) || (p.component === 'redis' && p.redis === sink.redis && !p.sinks));
  if (problems.length > 0) return problems.map((p) => p.reason).join('; ');
  if (sink.redis_error) return `Redis "${sink.redis}": ${sink.redis_error}`;
  if (sink.paused) return `paused${sink.held_wal_bytes === null ? '' : `: holds ${bytes(sink.held_wal_bytes)} of WAL in the slot`}`;
  if (sink.state === 'catching-up') return 'applying what it missed while paused';
  return null;
}

export function HealthBanner() {
  const { health } = useLive();
  const h = health.data;
  if (!h) return <ErrorNote error={health.error} />;
  return (
    <div class={`banner ${h.status === 'ok' ? 'ok' : 'bad'}`} role={h.status === 'ok' ? undefined : 'alert'} id="health">
      <strong>{h.status === 'ok' ? 'Healthy' : 'Unhealthy'}</strong>
      {h.status === 'ok' ? <span> — streaming, every sink can write{h.paused_sinks.length > 0 ? ` (paused: ${h.paused_sinks.join(', ')})` : ''}.</span> : null}
      {h.problems.length > 0 ? (
        <ul>
          {h.problems.map((p, i) => (
            <li key={i}>
              <strong>{p.component}{p.redis ? ` "${p.redis}"` : ''}</strong>
              {p.sinks && p.sinks.length > 0 ? ` (sinks ${p.sinks.join(', ')})` : ''}: {p.reason}
            </li>
          ))}
        </ul>
      ) : null}
      {health.error ? <ErrorNote error={health.error} stale /> : null}
    </div>
  );
}

function SourceCard() {
  const { source } = useLive();
  const s = source.data;
  return (
    <Card title="Source" id="source" sub={s ? `slot "${s.slot}", publication "${s.publication}"` : undefined}>
      <ErrorNote error={source.error} stale={s !== undefined} />
      {s ? (
        <dl class="stats">
          <Stat label="State"><Pill state={s.state} /></Stat>
          <Stat label="Slot lag">{bytes(s.lag_bytes)}</Stat>
          <Stat label="Lag (time)">{ms(s.lag_ms)}</Stat>
          <Stat label="Retained WAL">{bytes(s.retained_wal_bytes)}</Stat>
          <Stat label="Confirmed LSN"><code>{s.confirmed_lsn}</code></Stat>
          <Stat label="Server LSN"><code>{s.current_lsn ?? '–'}</code></Stat>
          <Stat label="Redis" wide>
            {s.redis.length === 0 ? '–' : s.redis.map((r) => (
              <span key={r.name} class="redis-state">
                {r.name} <Pill state={r.state} />
                {r.lastError ? <span class="error-text"> {r.lastError}</span> : null}
              </span>
            ))}
          </Stat>
          {s.held_by_paused_sinks.length > 0 ? (
            <Stat label="Held by paused sinks" wide>
              {s.held_by_paused_sinks.map((h) => `${h.sink}: ${bytes(h.held_wal_bytes)}`).join(', ')}
            </Stat>
          ) : null}
          {s.last_error ? <Stat label="Last error" wide><span class="error-text">{s.last_error}</span></Stat> : null}
        </dl>
      ) : source.error ? null : <p class="muted">Loading…</p>}
    </Card>
  );
}

function SinksTable() {
  const { sinks, health, history } = useLive();
  const list = sinks.data?.sinks;
  const last = history.samples[history.samples.length - 1];
  return (
    <Card title="Sinks" id="sinks" actions={<a class="button primary" href={href({ page: 'new' })}>New sink</a>}>
      <ErrorNote error={sinks.error} stale={list !== undefined} />
      {list === undefined ? (sinks.error ? null : <p class="muted">Loading…</p>) : list.length === 0 ? (
        <p class="muted">No sinks yet. <a href={href({ page: 'new' })}>Create one</a>, or add one under <code>sinks:</code> in sluice.yaml.</p>
      ) : (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Sink</th>
                <th scope="col">Type</th>
                <th scope="col">State</th>
                <th scope="col">Health</th>
                <th scope="col" class="num">Rate</th>
                <th scope="col" class="num">Applied</th>
                <th scope="col" class="num">Lag</th>
                <th scope="col" class="num">Failed</th>
                <th scope="col">Backfill</th>
              </tr>
            </thead>
            <tbody>
              {list.map((s) => {
                const reason = sinkReason(s, health.data);
                const running = (s.backfills ?? []).filter((b) => b.state === 'running');
                return (
                  <tr key={s.name} data-sink={s.name}>
                    <th scope="row"><a href={href({ page: 'sink', name: s.name, tab: 'overview' })}>{s.name}</a>{s.origin === 'api' ? <span class="tag">API</span> : null}</th>
                    <td>{s.type}</td>
                    <td><Pill state={s.state} /></td>
                    <td class="reason">{reason === null ? <span class="ok-text">ok</span> : <span class={s.paused ? 'warn-text' : 'error-text'}>{reason}</span>}</td>
                    <td class="num">{last ? rate(last.sinks[s.name] ?? 0) : '–'}</td>
                    <td class="num">{count(s.changes_applied)}</td>
                    <td class="num">{s.paused ? bytes(s.held_wal_bytes) : ms(s.lag_ms)}</td>
                    <td class="num" title={`${count(s.failed_total)} since this instance started`}>
                      {s.failed_messages > 0 ? <a href={href({ page: 'sink', name: s.name, tab: 'messages' })}>{count(s.failed_messages)}</a> : '0'}
                      {s.failed_store.full ? <span class="warn-text"> (full)</span> : null}
                    </td>
                    <td>
                      {s.backfills_error ? <span class="muted" title={s.backfills_error}>unknown</span> : running.length === 0 ? <span class="muted">–</span> : running.map((b) => (
                        <div key={b.id + b.table} class="bf-mini">
                          <Progress percent={b.percent} label={`backfill of ${b.table}`} />
                          <small>{b.percent === null ? count(b.rows) : `${b.percent}%`}</small>
                        </div>
                      ))}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  );
}

export function Overview() {
  const { history, sinks } = useLive();
  const names = (sinks.data?.sinks ?? []).map((s) => s.name);
  return (
    <>
      <HealthBanner />
      <SourceCard />
      <Card title="Activity" id="activity" sub="sampled by the server every 2 s, last 15 minutes">
        <ErrorNote error={history.error} stale={history.samples.length > 0} />
        <div class="charts">
          <ThroughputChart samples={history.samples} sinks={names} />
          <LatencyChart samples={history.samples} />
          <LagChart samples={history.samples} />
          <WalChart samples={history.samples} />
        </div>
      </Card>
      <SinksTable />
    </>
  );
}
