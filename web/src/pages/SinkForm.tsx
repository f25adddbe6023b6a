import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError, errorText, type ApiProblem, type ApiRedisTest, type ApiSinkType } from '../api.js';
import { Card, ErrorNote } from '../components/ui.js';
import { useLive } from '../live.js';
import { notify } from '../notify.js';
import { go, href } from '../router.js';
import { ACTIONS, COMMON_FIELDS, defaultActions, FUNCTION_EXAMPLES, FUNCTION_HINTS, FUNCTION_KINDS, SINK_TYPES, type FieldSpec, type FunctionKind } from '../sink-fields.js';
import { blockFromForm, emptyForm, formFromConfig, mergePatch, problemsByField, readyForPreview, visibleFields, type FormState } from '../sink-form-state.js';
import { Preview, type PreviewAction, type PreviewState } from './Preview.js';

const PREVIEW_DELAY_MS = 600;

function FieldErrors({ id, errors }: { id: string; errors: string[] | undefined }) {
  if (!errors || errors.length === 0) return null;
  return <p class="field-error" id={id}>{errors.join('; ')}</p>;
}

function Field({ spec, value, errors, onChange }: { spec: FieldSpec; value: string; errors: string[] | undefined; onChange: (v: string) => void }) {
  const id = `f-${spec.name}`;
  const described = `${id}-hint${errors ? ` ${id}-error` : ''}`;
  const common = { id, name: spec.name, 'aria-describedby': described, 'aria-invalid': errors ? true : undefined };
  return (
    <div class="field">
      <label for={id}>{spec.label}{spec.required ? <span aria-hidden="true"> *</span> : null}</label>
      {spec.kind === 'select' ? (
        <select {...common} value={value || spec.default || ''} onChange={(e) => onChange(e.currentTarget.value)}>
          {(spec.options ?? []).map((o) => <option key={o} value={o}>{o}{o === spec.default ? ' (default)' : ''}</option>)}
        </select>
      ) : (
        <input {...common} value={value} required={spec.required} inputMode={spec.kind === 'number' ? 'numeric' : undefined} placeholder={spec.default ?? ''} autocomplete="off" spellcheck={false} onInput={(e) => onChange(e.currentTarget.value)} />
      )}
      <p class="hint" id={`${id}-hint`}>{spec.hint}</p>
      <FieldErrors id={`${id}-error`} errors={errors} />
    </div>
  );
}

function RedisTest({ name }: { name: string }) {
  const [result, setResult] = useState<ApiRedisTest | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const test = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      setResult(await api.testRedis(name));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="redis-test" aria-live="polite">
      <button type="button" onClick={() => void test()} disabled={busy || name === ''}>{busy ? 'Testing…' : 'Test connection'}</button>
      {result ? (
        <span class="ok-text" id="redis-test-result">
          {result.ping} in {result.latency_ms} ms — Redis {result.server.version ?? '?'} ({result.server.mode ?? '?'}, {result.role ?? '?'})
        </span>
      ) : null}
      <ErrorNote error={error} />
    </div>
  );
}

export function SinkForm({ edit }: { edit?: string }) {
  const { sinks, source } = useLive();
  const original = edit === undefined ? undefined : sinks.data?.sinks.find((s) => s.name === edit);
  // the edit form starts from the stored block (never shown empty first)
  const [state, setState] = useState<FormState>(() => (original ? formFromConfig(original.config) : emptyForm()));
  const [loadedFrom, setLoadedFrom] = useState<string | null>(original?.name ?? null);
  const [problems, setProblems] = useState<readonly ApiProblem[]>([]);
  const [submitError, setSubmitError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const [preview, setPreview] = useState<PreviewState>({ result: null, error: null, loading: false, outdated: false });
  const [limit, setLimit] = useState(5);
  const [action, setAction] = useState<PreviewAction>('insert');
  const [shownFunctions, setShownFunctions] = useState<Set<FunctionKind>>(() => new Set(original ? FUNCTION_KINDS.filter((k) => (original.config[k] ?? '') !== '') : []));
  const seq = useRef(0);

  // … or from the block once it has arrived (a page opened at #/sinks/x/edit)
  useEffect(() => {
    if (original && loadedFrom !== original.name) {
      const form = formFromConfig(original.config);
      setState(form);
      setShownFunctions(new Set(FUNCTION_KINDS.filter((k) => form.functions[k] !== '')));
      setLoadedFrom(original.name);
    }
  }, [original, loadedFrom]);

  const block = useMemo(() => blockFromForm(state, { includeBackfill: edit === undefined }), [state, edit]);
  const blockKey = JSON.stringify([block, limit, action]);
  const byField = problemsByField(problems);
  const connections = [...new Set([...(source.data?.redis ?? []).map((r) => r.name), ...(sinks.data?.sinks ?? []).map((s) => s.redis)])];
  const redisName = state.redis.trim() || (connections.length === 1 ? connections[0]! : '');

  const runPreview = async (): Promise<void> => {
    const mine = ++seq.current;
    setPreview((p) => ({ ...p, loading: true }));
    try {
      const result = await api.preview({ sink: block, limit, action });
      if (mine !== seq.current) return;
      setPreview({ result, error: null, loading: false, outdated: false });
      setProblems([]);
    } catch (err) {
      if (mine !== seq.current) return;
      setPreview((p) => ({ result: p.result, error: errorText(err), loading: false, outdated: p.result !== null }));
      if (err instanceof ApiError) setProblems(err.problems);
    }
  };

  // a live preview: once the block is complete, a moment after each change
  useEffect(() => {
    if (edit !== undefined && loadedFrom === null) return;
    setPreview((p) => ({ ...p, outdated: p.result !== null }));
    if (!readyForPreview(state)) return;
    const t = window.setTimeout(() => void runPreview(), PREVIEW_DELAY_MS);
    return () => window.clearTimeout(t);
  }, [blockKey, loadedFrom]);

  const set = (patch: Partial<FormState>): void => setState((s) => ({ ...s, ...patch }));
  const setField = (name: string, value: string): void => setState((s) => ({ ...s, fields: { ...s.fields, [name]: value } }));
  const setType = (type: ApiSinkType): void => setState((s) => ({ ...s, type, actions: s.actions.join() === defaultActions(s.type).join() ? defaultActions(type) : s.actions }));

  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setSaving(true);
    setSubmitError(null);
    try {
      if (edit === undefined) {
        const r = await api.create(block);
        notify(`Sink ${r.sink.name} created`);
        await sinks.refresh();
        go({ page: 'sink', name: r.sink.name, tab: 'overview' });
      } else if (original) {
        const patch = mergePatch(original.config, block);
        if (Object.keys(patch).length === 0) {
          notify('Nothing changed');
        } else {
          await api.patch(edit, patch);
          notify(`Sink ${edit} changed: later changes use the new settings`);
        }
        await sinks.refresh();
        go({ page: 'sink', name: edit, tab: 'config' });
      }
    } catch (err) {
      setSubmitError(errorText(err));
      if (err instanceof ApiError) setProblems(err.problems);
    } finally {
      setSaving(false);
    }
  };

  if (edit !== undefined && !original) {
    return sinks.data ? <p>No sink named <code>{edit}</code>. <a href={href({ page: 'overview' })}>Back to the overview</a></p> : <ErrorNote error={sinks.error} />;
  }
  if (original && original.origin === 'config') {
    return <p>Sink <code>{original.name}</code> is defined in sluice.yaml: change it there and restart Sluice.</p>;
  }
  if (edit !== undefined && loadedFrom === null) return <p class="muted">Loading…</p>;

  const typeFields = visibleFields(state);
  return (
    <>
      <div class="page-head">
        <h1>{edit === undefined ? 'New sink' : `Edit ${edit}`}</h1>
      </div>
      <div class="form-layout">
        <form class="sink-form" onSubmit={(e) => void submit(e)} noValidate aria-label={edit === undefined ? 'New sink' : `Edit sink ${edit}`}>
          <Card title="Sink" id="form-sink">
            <FieldErrors id="form-general-error" errors={byField.get('')} />
            <div class="field">
              <label for="f-name">Name <span aria-hidden="true">*</span></label>
              <input id="f-name" name="name" value={state.name} disabled={edit !== undefined} required autocomplete="off" spellcheck={false} aria-describedby="f-name-hint" aria-invalid={byField.has('name') || undefined} onInput={(e) => set({ name: e.currentTarget.value })} />
              <p class="hint" id="f-name-hint">Lowercase letters, digits, _ and -. Used in keys Sluice owns, logs and metrics.</p>
              <FieldErrors id="f-name-error" errors={byField.get('name')} />
            </div>
            <fieldset class="field types">
              <legend>Type</legend>
              {SINK_TYPES.map((t) => (
                <label key={t.type} class="radio">
                  <input type="radio" name="type" value={t.type} checked={state.type === t.type} onChange={() => setType(t.type)} />
                  <strong>{t.type}</strong> <span class="muted">{t.writes}</span>
                </label>
              ))}
              <FieldErrors id="f-type-error" errors={byField.get('type')} />
            </fieldset>
            <div class="field">
              <label for="f-tables">Tables <span aria-hidden="true">*</span></label>
              <input id="f-tables" name="tables" value={state.tables} required autocomplete="off" spellcheck={false} placeholder="public.orders" aria-describedby="f-tables-hint" aria-invalid={byField.has('tables') || undefined} onInput={(e) => set({ tables: e.currentTarget.value })} />
              <p class="hint" id="f-tables-hint">schema.table, table (public) or schema.*, separated by commas.</p>
              <FieldErrors id="f-tables-error" errors={byField.get('tables')} />
            </div>
            <fieldset class="field">
              <legend>Actions</legend>
              {ACTIONS.map((a) => (
                <label key={a} class="checkbox">
                  <input type="checkbox" name="actions" value={a} checked={state.actions.includes(a)} onChange={(e) => set({ actions: ACTIONS.filter((x) => (x === a ? e.currentTarget.checked : state.actions.includes(x))) })} />
                  {a}
                </label>
              ))}
              <FieldErrors id="f-actions-error" errors={byField.get('actions')} />
            </fieldset>
            <div class="field">
              <label for="f-redis">Redis connection</label>
              <input id="f-redis" name="redis" list="redis-names" value={state.redis} disabled={edit !== undefined} placeholder={connections.length === 1 ? `${connections[0]!} (the only one)` : ''} autocomplete="off" aria-describedby="f-redis-hint" onInput={(e) => set({ redis: e.currentTarget.value })} />
              <datalist id="redis-names">{connections.map((c) => <option key={c} value={c} />)}</datalist>
              <p class="hint" id="f-redis-hint">A connection under redis: in sluice.yaml; may be left empty when there is only one.</p>
              <FieldErrors id="f-redis-error" errors={byField.get('redis')} />
              <RedisTest name={redisName} />
            </div>
          </Card>
          <Card title={`${state.type} options`} id="form-options">
            {typeFields.map((f) => <Field key={f.name} spec={f} value={state.fields[f.name] ?? ''} errors={byField.get(f.name)} onChange={(v) => setField(f.name, v)} />)}
            <details class="more">
              <summary>More options</summary>
              {COMMON_FIELDS.map((f) => <Field key={f.name} spec={f} value={state.fields[f.name] ?? ''} errors={byField.get(f.name)} onChange={(v) => setField(f.name, v)} />)}
            </details>
            {edit === undefined ? (
              <label class="checkbox">
                <input type="checkbox" name="backfill" checked={state.backfill} onChange={(e) => set({ backfill: e.currentTarget.checked })} />
                Also copy the rows already in the tables (backfill)
              </label>
            ) : null}
          </Card>
          <Card title="Functions" id="form-functions" sub="JavaScript or TypeScript, run in a sandbox for each change">
            {FUNCTION_KINDS.map((kind) => {
              const rowErrors = (preview.result?.rows ?? []).map((r, i) => ({ r, i })).filter(({ r }) => r.error !== null && r.error.stage === kind);
              const shown = shownFunctions.has(kind) || state.functions[kind] !== '';
              return (
                <div key={kind} class="field function">
                  {shown ? (
                    <>
                      <label for={`f-${kind}`}>{kind}</label>
                      <textarea id={`f-${kind}`} name={kind} class="code" rows={6} spellcheck={false} value={state.functions[kind]} aria-describedby={`f-${kind}-hint f-${kind}-error`} aria-invalid={byField.has(kind) || rowErrors.length > 0 || undefined} onInput={(e) => set({ functions: { ...state.functions, [kind]: e.currentTarget.value } })} />
                      <p class="hint" id={`f-${kind}-hint`}>{FUNCTION_HINTS[kind]} Empty: none.</p>
                      <div id={`f-${kind}-error`}>
                        <FieldErrors id={`f-${kind}-compile-error`} errors={byField.get(kind)} />
                        {rowErrors.length > 0 ? <p class="field-error">In the preview: {rowErrors.map(({ r, i }) => `row ${i + 1}: ${r.error!.message}`).join('; ')}</p> : null}
                      </div>
                    </>
                  ) : (
                    <button type="button" onClick={() => { setShownFunctions((s) => new Set(s).add(kind)); set({ functions: { ...state.functions, [kind]: FUNCTION_EXAMPLES[kind] } }); }}>Add a {kind}</button>
                  )}
                </div>
              );
            })}
          </Card>
          <div class="form-actions">
            <ErrorNote error={submitError} />
            <button type="submit" class="primary" disabled={saving}>{saving ? 'Saving…' : edit === undefined ? 'Create sink' : 'Save changes'}</button>
            <a class="button" href={edit === undefined ? href({ page: 'overview' }) : href({ page: 'sink', name: edit, tab: 'config' })}>Cancel</a>
          </div>
        </form>
        <Preview state={preview} limit={limit} action={action} onLimit={setLimit} onAction={setAction} onRun={() => void runPreview()} />
      </div>
    </>
  );
}
