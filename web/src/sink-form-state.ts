// The create/edit form's state, and the sink block (or merge patch) it stands for.
import type { ApiProblem, ApiSinkAction, ApiSinkBlock, ApiSinkType } from '../../src/http/api-types.js';
import { COMMON_FIELDS, defaultActions, FUNCTION_KINDS, TYPE_FIELDS, type FieldSpec, type FunctionKind } from './sink-fields.js';

export interface FormState {
  name: string;
  type: ApiSinkType;
  redis: string;
  /** "public.orders, public.items" */
  tables: string;
  actions: ApiSinkAction[];
  backfill: boolean;
  /** the type's and the common options, as typed */
  fields: Record<string, string>;
  /** '' when the sink has none */
  functions: Record<FunctionKind, string>;
}

export function emptyForm(): FormState {
  return { name: '', type: 'string', redis: '', tables: '', actions: defaultActions('string'), backfill: false, fields: {}, functions: { filter: '', transform: '', route: '' } };
}

export function formFromConfig(cfg: ApiSinkBlock): FormState {
  const fields: Record<string, string> = {};
  for (const f of [...TYPE_FIELDS[cfg.type], ...COMMON_FIELDS]) {
    const v = cfg[f.name];
    if (v !== undefined && v !== null) fields[f.name] = typeof v === 'object' && !Array.isArray(v) ? measuresText(v) : String(v);
  }
  return {
    name: cfg.name,
    type: cfg.type,
    redis: cfg.redis ?? '',
    tables: cfg.tables.join(', '),
    actions: cfg.actions ?? defaultActions(cfg.type),
    backfill: false,
    fields,
    functions: { filter: cfg.filter ?? '', transform: cfg.transform ?? '', route: cfg.route ?? '' },
  };
}

/** The fields the form shows for these values (hash `field` only in field mode, …). */
export function visibleFields(state: FormState): FieldSpec[] {
  return TYPE_FIELDS[state.type].filter((f) => !f.when || f.when(state.fields));
}

/** An aggregate's measures as the form shows them: `orders: count, revenue: sum(amount)`. */
export function measuresText(measures: Readonly<Record<string, string>>): string {
  return Object.entries(measures).map(([field, m]) => `${field}: ${m}`).join(', ');
}

/** The form's measures text as the map the server takes (a part without `:` is kept whole, for the server to refuse). */
export function measuresFromText(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  // commas inside sum(…) never occur (one column), so a comma always separates two measures
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const at = part.indexOf(':');
    if (at < 0) out[part] = '';
    else out[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return out;
}

export function splitTables(text: string): string[] {
  return text.split(/[\s,]+/).filter((t) => t !== '');
}

/** The sink block: options left empty are left out (the server fills in its defaults). */
export function blockFromForm(state: FormState, opts: { includeBackfill: boolean }): ApiSinkBlock {
  const block: Record<string, unknown> = { name: state.name.trim(), type: state.type, tables: splitTables(state.tables) };
  if (state.redis.trim() !== '') block.redis = state.redis.trim();
  block.actions = state.actions;
  for (const f of [...visibleFields(state), ...COMMON_FIELDS]) {
    const text = (state.fields[f.name] ?? '').trim();
    if (text === '') continue;
    block[f.name] = f.kind === 'number' && /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : f.kind === 'measures' ? measuresFromText(text) : text;
  }
  for (const kind of FUNCTION_KINDS) if (state.functions[kind].trim() !== '') block[kind] = state.functions[kind];
  if (opts.includeBackfill && state.backfill) block.backfill = true;
  return block as unknown as ApiSinkBlock;
}

/**
 * A JSON merge patch from the sink's stored block to the form's: changed options, and null for
 * each option the form no longer has (the server's default applies again). Name and connection
 * cannot change.
 */
export function mergePatch(original: ApiSinkBlock, next: ApiSinkBlock): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  const before = original as unknown as Record<string, unknown>;
  const after = next as unknown as Record<string, unknown>;
  for (const [k, v] of Object.entries(after)) {
    if (k === 'name' || k === 'redis') continue;
    if (JSON.stringify(before[k]) !== JSON.stringify(v)) patch[k] = v;
  }
  for (const k of Object.keys(before)) {
    if (k === 'name' || k === 'redis' || k === 'backfill' || k in after) continue;
    patch[k] = null;
  }
  return patch;
}

/** Whether the block is complete enough to ask the server for a preview without a click. */
export function readyForPreview(state: FormState): boolean {
  if (splitTables(state.tables).length === 0) return false;
  if (state.name.trim() !== '' && !/^[a-z0-9][a-z0-9_-]*$/.test(state.name.trim())) return false;
  for (const f of visibleFields(state)) {
    const v = (state.fields[f.name] ?? '').trim();
    if (f.required && v === '') return false;
    if (f.kind === 'template' && v !== '' && (v.split('{').length !== v.split('}').length)) return false;
  }
  return state.actions.length > 0;
}

/** Problems by the option they concern ("tables[1]" → tables); "" for the block as a whole. */
export function problemsByField(problems: readonly ApiProblem[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of problems) {
    const field = /^[A-Za-z_]+/.exec(p.path)?.[0] ?? '';
    const text = field === '' || p.path === field ? p.message : `${p.path}: ${p.message}`;
    out.set(field, [...(out.get(field) ?? []), text]);
  }
  return out;
}
