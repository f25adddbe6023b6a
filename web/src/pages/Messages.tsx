import { useState } from 'preact/hooks';
import { api, ApiError, errorText, type ApiFailedMessage, type ApiSink } from '../api.js';
import { Card, Confirm, ErrorNote } from '../components/ui.js';
import { count, time } from '../format.js';
import { notify } from '../notify.js';
import { usePoll } from '../poll.js';

const PAGE = 50;

/** Every failed message id of the sink, page after page (for "all at once"). */
async function allFailedIds(sink: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await api.failed(sink, cursor, 500);
    ids.push(...page.messages.map((m) => m.id));
    cursor = page.next_cursor;
  } while (cursor !== null);
  return ids;
}

function Envelope({ sink, m }: { sink: string; m: ApiFailedMessage }) {
  const [full, setFull] = useState<ApiFailedMessage | null>(null);
  const [error, setError] = useState<string | null>(null);
  const shown = full ?? m;
  const load = (): void => {
    api.failedOne(sink, m.id).then(setFull, (err: unknown) => setError(errorText(err)));
  };
  return (
    <details class="envelope" onToggle={(e) => { if (e.currentTarget.open && m.message_truncated && !full) load(); }}>
      <summary>Envelope</summary>
      <ErrorNote error={error} />
      {shown.message_omitted ? (
        <p class="muted">Not kept ({count(shown.message_omitted.bytes)} bytes: {shown.message_omitted.why}).{shown.identity === undefined ? '' : ` Row key: ${JSON.stringify(shown.identity)}`}</p>
      ) : shown.message_truncated ? <p class="muted">{count(shown.message_chars)} characters: loading…</p> : (
        <pre tabIndex={0}>{shown.message === null ? 'null (the row itself could not be rendered)' : JSON.stringify(shown.message, null, 2)}</pre>
      )}
    </details>
  );
}

function FailedMessages({ sink }: { sink: ApiSink }) {
  const [limit, setLimit] = useState(PAGE);
  const page = usePoll(() => api.failed(sink.name, null, limit), [sink.name, limit]);
  const [busy, setBusy] = useState<Set<string>>(new Set());
  const [bulk, setBulk] = useState<string | null>(null);
  const [confirmDiscardAll, setConfirmDiscardAll] = useState(false);

  const act = async (verb: 'retry' | 'discard', id: string): Promise<boolean> => {
    setBusy((b) => new Set(b).add(id));
    try {
      if (verb === 'retry') {
        const r = await api.retry(sink.name, id);
        notify(r.outcome === 'pending' ? `Retry of ${id} queued behind the stream` : `Retried ${id}: ${r.outcome.replace('_', ' ')}`);
      } else {
        await api.discard(sink.name, id);
        notify(`Discarded ${id}`);
      }
      return true;
    } catch (err) {
      notify(`${verb === 'retry' ? 'Retry' : 'Discard'} of ${id}: ${errorText(err)}`, true);
      return false;
    } finally {
      setBusy((b) => {
        const n = new Set(b);
        n.delete(id);
        return n;
      });
      await page.refresh();
    }
  };

  const all = async (verb: 'retry' | 'discard'): Promise<void> => {
    setBulk(`${verb === 'retry' ? 'Retrying' : 'Discarding'}: listing…`);
    try {
      const ids = await allFailedIds(sink.name);
      let ok = 0;
      for (const [i, id] of ids.entries()) {
        setBulk(`${verb === 'retry' ? 'Retrying' : 'Discarding'} ${i + 1} of ${ids.length}…`);
        try {
          if (verb === 'retry') await api.retry(sink.name, id);
          else await api.discard(sink.name, id);
          ok++;
        } catch (err) {
          // already gone (retried or discarded meanwhile): that one is done too
          if (err instanceof ApiError && err.code === 'message_not_found') ok++;
        }
      }
      notify(`${verb === 'retry' ? 'Retried' : 'Discarded'} ${ok} of ${ids.length} failed messages${ok < ids.length ? ' (the others are still listed with their reason)' : ''}`, ok < ids.length);
    } catch (err) {
      notify(errorText(err), true);
    } finally {
      setBulk(null);
      await page.refresh();
    }
  };

  const p = page.data;
  return (
    <Card
      title="Failed messages"
      id="failed"
      sub={p ? `${count(p.total)} waiting, newest first${sink.failed_store.full ? ' — the store is full: new failures are only logged' : ''}` : undefined}
      actions={
        <div class="actions">
          <button type="button" disabled={!p || p.total === 0 || bulk !== null} onClick={() => void all('retry')}>Retry all</button>
          <button type="button" class="danger" disabled={!p || p.total === 0 || bulk !== null} onClick={() => setConfirmDiscardAll(true)}>Discard all</button>
        </div>
      }
    >
      {bulk ? <p role="status">{bulk}</p> : null}
      <ErrorNote error={page.error} stale={p !== undefined} />
      {!p ? (page.error ? null : <p class="muted">Loading…</p>) : p.messages.length === 0 ? (
        <p class="muted" id="no-failed">Nothing failed: every message of this sink was delivered.</p>
      ) : (
        <div class="table-wrap">
          <table class="messages">
            <thead>
              <tr><th scope="col">Id</th><th scope="col">Table</th><th scope="col">Action</th><th scope="col">Reason</th><th scope="col">Failed at</th><th scope="col"><span class="sr-only">Actions</span></th></tr>
            </thead>
            <tbody>
              {p.messages.map((m) => (
                <tr key={m.id} data-id={m.id}>
                  <td><code>{m.id}</code></td>
                  <td>{m.table}</td>
                  <td>{m.action}</td>
                  <td class="reason"><span class="error-text">{m.reason}</span><Envelope sink={sink.name} m={m} /></td>
                  <td>{time(m.failed_at)}</td>
                  <td>
                    <div class="actions">
                      <button type="button" disabled={busy.has(m.id)} onClick={() => void act('retry', m.id)} aria-label={`Retry ${m.id}`}>Retry</button>
                      <button type="button" class="danger" disabled={busy.has(m.id)} onClick={() => void act('discard', m.id)} aria-label={`Discard ${m.id}`}>Discard</button>
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {p.total > p.messages.length && limit < 500 ? <button type="button" onClick={() => setLimit(Math.min(500, limit + PAGE))}>Show {PAGE} more</button> : null}
        </div>
      )}
      <Confirm open={confirmDiscardAll} title={`Discard every failed message of ${sink.name}?`} confirmLabel="Discard all" danger onClose={(yes) => {
        setConfirmDiscardAll(false);
        if (yes) void all('discard');
      }}>
        <p>{p ? count(p.total) : 'All'} messages will be deleted from <code>sluice:failed:{sink.name}</code>. Their rows stay in Postgres: a backfill writes them again.</p>
      </Confirm>
    </Card>
  );
}

function Deliveries({ sink }: { sink: ApiSink }) {
  const [limit, setLimit] = useState(25);
  const list = usePoll(() => api.delivered(sink.name, limit), [sink.name, limit]);
  const d = list.data;
  return (
    <Card title="Recent deliveries" id="deliveries" sub="the last 100 since this instance started: keys, no values">
      <ErrorNote error={list.error} stale={d !== undefined} />
      {!d ? (list.error ? null : <p class="muted">Loading…</p>) : d.messages.length === 0 ? <p class="muted">Nothing delivered since this instance started.</p> : (
        <div class="table-wrap">
          <table class="deliveries">
            <thead>
              <tr><th scope="col">Applied</th><th scope="col">Id</th><th scope="col">Table</th><th scope="col">Action</th><th scope="col">Command</th><th scope="col">Key</th></tr>
            </thead>
            <tbody>
              {d.messages.map((m) => (
                <tr key={m.id}>
                  <td>{time(m.applied_at)}</td>
                  <td><code>{m.id}</code></td>
                  <td>{m.table}</td>
                  <td>{m.action}</td>
                  <td>{m.command}{m.commands > 1 ? <span class="muted"> +{m.commands - 1}</span> : null}</td>
                  <td><code class="key">{m.key ?? '–'}</code></td>
                </tr>
              ))}
            </tbody>
          </table>
          {d.messages.length === limit && limit < 100 ? <button type="button" onClick={() => setLimit(100)}>Show the last 100</button> : null}
        </div>
      )}
    </Card>
  );
}

export function Messages({ sink }: { sink: ApiSink }) {
  return (
    <>
      <FailedMessages sink={sink} />
      <Deliveries sink={sink} />
    </>
  );
}
