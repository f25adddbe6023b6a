import { useState } from 'preact/hooks';
import { api, errorText, type ApiSink } from '../api.js';
import { Card, ErrorNote, Pill, Progress } from '../components/ui.js';
import { count, duration, rate, time } from '../format.js';
import { notify } from '../notify.js';
import { usePoll } from '../poll.js';

/** A sink's backfills with their progress, and a form to start one (whole sink, a table, rows from a condition). */
export function Backfills({ sink }: { sink: ApiSink }) {
  const list = usePoll(() => api.backfills(sink.name), [sink.name]);
  const [table, setTable] = useState('');
  const [from, setFrom] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  const start = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await api.startBackfill(sink.name, { ...(table ? { table } : {}), ...(from.trim() ? { from: from.trim() } : {}) });
      notify(`Backfill started: ${r.backfills.map((b) => b.table).join(', ')}`);
      await list.refresh();
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  const backfills = [...(list.data?.backfills ?? [])].sort((a, b) => (a.state === 'running' ? 0 : 1) - (b.state === 'running' ? 0 : 1) || b.started_at.localeCompare(a.started_at));
  return (
    <Card title="Backfills" id="backfills" sub="copies existing rows beside live changes (never older than the stream)">
      <form class="inline-form" onSubmit={(e) => void start(e)} aria-describedby="backfill-help">
        <label>
          Table
          <select value={table} onChange={(e) => setTable(e.currentTarget.value)} name="table">
            <option value="">all of the sink's tables</option>
            {sink.tables.filter((t) => !t.endsWith('.*')).map((t) => <option key={t} value={t}>{t}</option>)}
          </select>
        </label>
        <label class="grow">
          Only rows where (optional)
          <input name="from" value={from} onInput={(e) => setFrom(e.currentTarget.value)} placeholder="updated_at>=2026-01-01" autocomplete="off" spellcheck={false} />
        </label>
        <button type="submit" class="primary" disabled={busy}>{busy ? 'Starting…' : 'Start backfill'}</button>
      </form>
      <p id="backfill-help" class="hint">A condition is one column, an operator (<code>&gt;=</code>, <code>&gt;</code>, <code>=</code>, <code>&lt;</code>, <code>&lt;=</code>) and a value.</p>
      <ErrorNote error={error} />
      <ErrorNote error={list.error} stale={list.data !== undefined} />
      {backfills.length === 0 ? (
        <p class="muted">{list.data ? 'No backfill of this sink yet.' : list.error ? '' : 'Loading…'}</p>
      ) : (
        <ul class="backfills">
          {backfills.map((b) => (
            <li key={b.id + b.table} class="backfill" data-state={b.state} data-table={b.table}>
              <div class="backfill-head">
                <strong>{b.table}</strong> <Pill state={b.state} />
                {b.from ? <code class="muted"> where {b.from}</code> : null}
                {b.reason ? <span class="muted"> ({b.reason})</span> : null}
                <span class="spacer" />
                <span class="muted">started {time(b.started_at)}</span>
              </div>
              <Progress percent={b.state === 'done' ? 100 : b.percent} label={`backfill of ${b.table}`} />
              <div class="backfill-facts">
                <span>{count(b.rows)}{b.estimated_total === null ? '' : ` of ~${count(b.estimated_total)}`} rows{b.percent === null ? '' : ` (${b.percent}%)`}</span>
                {b.state === 'running' ? <span>{rate(b.rate)}, {b.eta_seconds === null ? 'ETA unknown' : `${duration(b.eta_seconds)} left`}</span> : null}
                {b.superseded > 0 ? <span class="muted">{count(b.superseded)} rows newer in the stream</span> : null}
                {b.state === 'running' && (b.attempts ?? 0) > 0 ? (
                  <span class="muted">
                    {b.attempts} failed attempt{b.attempts === 1 ? '' : 's'}, tried again{b.next_retry_at ? ` at ${time(b.next_retry_at)}` : ''}
                  </span>
                ) : null}
                {b.error && b.state === 'failed' ? <span class="error-text">{b.error}</span> : null}
                {b.error && b.state !== 'failed' ? <span class="muted">{(b.attempts ?? 0) > 0 && b.state !== 'running' ? `after ${b.attempts} failed attempt${b.attempts === 1 ? '' : 's'}; ` : ''}last error: {b.error}</span> : null}
                {b.orphan_sweep ? (
                  <span class="muted">
                    orphan sweep {b.orphan_sweep.state}
                    {b.orphan_sweep.deleted !== undefined ? `: ${count(b.orphan_sweep.deleted)} removed, ${count(b.orphan_sweep.kept ?? 0)} kept` : ''}
                    {b.orphan_sweep.error ? ` (${b.orphan_sweep.error})` : ''}
                  </span>
                ) : null}
              </div>
            </li>
          ))}
        </ul>
      )}
    </Card>
  );
}
