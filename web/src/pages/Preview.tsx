import type { ApiPreview, ApiPreviewRow } from '../api.js';
import { ErrorNote } from '../components/ui.js';

export interface PreviewState {
  result: ApiPreview | null;
  error: string | null;
  loading: boolean;
  /** the block changed since the last preview */
  outdated: boolean;
}

export const PREVIEW_ACTIONS = ['insert', 'update', 'delete', 'read'] as const;
export type PreviewAction = (typeof PREVIEW_ACTIONS)[number];

function Command({ c }: { c: ApiPreviewRow['commands'][number] }) {
  return (
    <li class="command">
      <code>
        <strong>{c.command}</strong> {c.key === null ? null : <span class="key">{c.key}</span>} {c.args.map((a, i) => <span key={i} class="arg">{a}</span>)}
      </code>
    </li>
  );
}

function Row({ row, index }: { row: ApiPreviewRow; index: number }) {
  return (
    <li class={`preview-row${row.error ? ' failed' : row.skipped ? ' skipped' : ''}`} data-row={index}>
      <div class="preview-record">
        <span class="muted">row {index + 1}</span>
        <code>{JSON.stringify(row.record)}</code>
      </div>
      {row.skipped ? (
        <p class="muted">filtered out: nothing is written</p>
      ) : row.error ? (
        <p class="error-text preview-error">
          <span class="stage">{row.error.stage === 'sink' ? 'would fail' : `${row.error.stage} error`}</span> {row.error.message}
        </p>
      ) : row.commands.length === 0 ? (
        <p class="muted">no command (the sink does not write this action)</p>
      ) : (
        <ul class="commands">{row.commands.map((c, i) => <Command key={i} c={c} />)}</ul>
      )}
    </li>
  );
}

/** What the sink would write for a few real rows, before anything is saved. */
export function Preview({ state, limit, action, onLimit, onAction, onRun }: {
  state: PreviewState;
  limit: number;
  action: PreviewAction;
  onLimit: (n: number) => void;
  onAction: (a: PreviewAction) => void;
  onRun: () => void;
}) {
  const r = state.result;
  return (
    <section class="card preview" id="preview" aria-labelledby="preview-title" aria-busy={state.loading}>
      <header class="card-head">
        <h2 id="preview-title">Preview</h2>
        <span class="sub">real rows, planned by this sink; nothing is written</span>
      </header>
      <div class="inline-form">
        <label>
          Rows
          <input type="number" min={1} max={20} value={limit} onInput={(e) => onLimit(Math.min(20, Math.max(1, Number(e.currentTarget.value) || 1)))} />
        </label>
        <label>
          As
          <select value={action} onChange={(e) => onAction(e.currentTarget.value as PreviewAction)}>
            {PREVIEW_ACTIONS.map((a) => <option key={a} value={a}>{a === 'read' ? 'read (backfill)' : a}</option>)}
          </select>
        </label>
        <button type="button" onClick={onRun} disabled={state.loading}>{state.loading ? 'Reading…' : 'Preview'}</button>
      </div>
      <ErrorNote error={state.error} />
      {r === null ? (
        state.error ? null : <p class="muted">Fill in the tables (and the options the type requires): the preview reads a few rows of the first table.</p>
      ) : (
        <>
          <p class={state.outdated ? 'muted outdated' : 'muted'} id="preview-summary">
            {r.rows.length} row{r.rows.length === 1 ? '' : 's'} of {r.table}, as {r.action}
            {state.outdated ? ' (the form changed since: preview again)' : ''}
          </p>
          {r.rows.length === 0 ? <p class="muted">The table is empty: nothing to show.</p> : <ol class="preview-rows">{r.rows.map((row, i) => <Row key={i} row={row} index={i} />)}</ol>}
        </>
      )}
    </section>
  );
}
