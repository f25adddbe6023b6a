import { useState } from 'preact/hooks';
import { api, errorText, type ApiSink } from '../api.js';
import { LagChart, SinkLatencyChart, SinkRateChart } from '../charts.js';
import { Card, Confirm, ErrorNote, Pill, Stat } from '../components/ui.js';
import { bytes, count, ms, rate } from '../format.js';
import { useLive } from '../live.js';
import { notify } from '../notify.js';
import { go, href, type Route } from '../router.js';
import { Backfills } from './Backfills.js';
import { Messages } from './Messages.js';
import { sinkReason } from './Overview.js';

type Tab = Extract<Route, { page: 'sink' }>['tab'];

const TABS: { tab: Tab; label: string }[] = [
  { tab: 'overview', label: 'Overview' },
  { tab: 'messages', label: 'Messages' },
  { tab: 'config', label: 'Configuration' },
];

function Actions({ sink }: { sink: ApiSink }) {
  const { sinks } = useLive();
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const run = async (what: string, f: () => Promise<unknown>, after?: () => void): Promise<void> => {
    setBusy(true);
    try {
      await f();
      notify(what);
      after?.();
      await sinks.refresh();
    } catch (err) {
      notify(errorText(err), true);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="actions">
      {sink.paused ? (
        <button type="button" class="primary" disabled={busy} onClick={() => void run(`Sink ${sink.name} resumed: it applies what it missed`, () => api.resume(sink.name))}>Resume</button>
      ) : (
        <button type="button" disabled={busy} onClick={() => void run(`Sink ${sink.name} paused: the slot keeps its WAL until it resumes`, () => api.pause(sink.name))}>Pause</button>
      )}
      {sink.origin === 'api' ? (
        <>
          <a class="button" href={href({ page: 'edit', name: sink.name })}>Edit</a>
          <button type="button" class="danger" disabled={busy} onClick={() => setConfirmDelete(true)}>Delete</button>
        </>
      ) : null}
      <Confirm open={confirmDelete} title={`Delete sink ${sink.name}?`} confirmLabel="Delete sink" danger onClose={(yes) => {
        setConfirmDelete(false);
        if (yes) void run(`Sink ${sink.name} deleted`, () => api.remove(sink.name), () => go({ page: 'overview' }));
      }}>
        <p>It stops at once. What it wrote stays in Redis; its position, failed messages and backfill records are removed.</p>
      </Confirm>
    </div>
  );
}

function SinkOverview({ sink }: { sink: ApiSink }) {
  const { history } = useLive();
  const last = history.samples[history.samples.length - 1];
  return (
    <>
      <Card title="Now" id="sink-now">
        <dl class="stats">
          <Stat label="State"><Pill state={sink.state} /></Stat>
          <Stat label="Rate">{last ? rate(last.sinks[sink.name] ?? 0) : '–'}</Stat>
          <Stat label="Changes applied">{count(sink.changes_applied)}</Stat>
          <Stat label="Failed messages">
            {sink.failed_messages > 0 ? <a href={href({ page: 'sink', name: sink.name, tab: 'messages' })}>{count(sink.failed_messages)} waiting</a> : '0 waiting'}
            <span class="muted"> ({count(sink.failed_total)} since start)</span>
          </Stat>
          <Stat label="Lag">{sink.paused ? 'paused' : `${ms(sink.lag_ms)} / ${bytes(sink.lag_bytes)}`}</Stat>
          {sink.held_wal_bytes !== null ? <Stat label="WAL held">{bytes(sink.held_wal_bytes)}</Stat> : null}
          <Stat label="Position"><code>{sink.position ?? '–'}</code></Stat>
          <Stat label="Redis">{sink.redis}</Stat>
          <Stat label="Tables" wide>{sink.tables.join(', ')}</Stat>
        </dl>
      </Card>
      <Card title="Activity" id="sink-activity" sub="server samples every 2 s; the lag is the slot's, shared by every sink">
        <div class="charts">
          <SinkRateChart samples={history.samples} sink={sink.name} />
          <SinkLatencyChart samples={history.samples} sink={sink.name} />
          <LagChart samples={history.samples} allSinks />
        </div>
      </Card>
      <Backfills sink={sink} />
    </>
  );
}

function SinkConfig({ sink }: { sink: ApiSink }) {
  return (
    <Card title="Configuration" id="sink-config" sub={sink.origin === 'config' ? 'from sluice.yaml: change the file and restart' : 'created through the API: Edit changes it'}>
      <pre class="config" tabIndex={0}>{JSON.stringify(sink.config, null, 2)}</pre>
    </Card>
  );
}

export function SinkPage({ name, tab }: { name: string; tab: Tab }) {
  const { sinks, health } = useLive();
  const sink = sinks.data?.sinks.find((s) => s.name === name);
  if (!sink) {
    return (
      <>
        <ErrorNote error={sinks.error} />
        {sinks.data ? <p>No sink named <code>{name}</code>. <a href={href({ page: 'overview' })}>Back to the overview</a></p> : sinks.error ? null : <p class="muted">Loading…</p>}
      </>
    );
  }
  const reason = sinkReason(sink, health.data);
  return (
    <>
      <div class="page-head">
        <h1>
          {sink.name} <span class="muted type">{sink.type} sink</span> <Pill state={sink.state} />
          {sink.origin === 'api' ? <span class="tag">API</span> : <span class="tag">sluice.yaml</span>}
        </h1>
        <Actions sink={sink} />
      </div>
      {reason ? <p class={sink.paused ? 'banner warn' : 'banner bad'} role="status">{reason}</p> : null}
      {sink.failed_store.full ? (
        <p class="banner warn" role="status" id="failed-store-full">
          The failed-message store is full ({count(sink.failed_store.messages)} of {count(sink.failed_store.max_messages)} messages, {bytes(sink.failed_store.bytes)} of {bytes(sink.failed_store.max_bytes)}):
          new failures are logged but not kept{sink.failed_store.dropped > 0 ? ` (${count(sink.failed_store.dropped)} so far)` : ''}. Retry or discard some.
        </p>
      ) : null}
      <ErrorNote error={sinks.error} stale />
      <nav class="tabs" aria-label={`${sink.name} sections`}>
        {TABS.map((t) => (
          <a key={t.tab} href={href({ page: 'sink', name: sink.name, tab: t.tab })} aria-current={t.tab === tab ? 'page' : undefined}>
            {t.label}
            {t.tab === 'messages' && sink.failed_messages > 0 ? <span class="badge">{count(sink.failed_messages)}</span> : null}
          </a>
        ))}
      </nav>
      {tab === 'overview' ? <SinkOverview sink={sink} /> : tab === 'messages' ? <Messages sink={sink} /> : <SinkConfig sink={sink} />}
    </>
  );
}
