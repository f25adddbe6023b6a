import type pg from 'pg';
import type { FastifyInstance } from 'fastify';
import type { SluiceConfig } from '../config/schema.js';
import type { SinkConfig } from '../config/sink-block.js';
import { parseSinkBlock } from '../config/sink-block.js';
import type { Action, Change } from '../core/change.js';
import type { RedisCommand } from '../core/command.js';
import { recordJson, type MessageMeta } from '../core/render.js';
import { microsSince2000 } from '../core/time.js';
import { readCatalogTable } from '../pg/catalog.js';
import { splitTable } from '../pg/source-setup.js';
import { createTextClient } from '../pg/text-client.js';
import { createSink } from '../sinks/index.js';
import { FunctionError, SinkFunctions } from '../functions/index.js';
import { errorMessage, SluiceError } from '../util/errors.js';
import { apiError } from './api-error.js';
import type { ApiPreview, ApiPreviewCommand, ApiPreviewRequest, ApiPreviewRow, ApiProblem } from './api-types.js';

export const MAX_PREVIEW_ROWS = 20;
const DEFAULT_PREVIEW_ROWS = 5;
const PREVIEW_ACTIONS: readonly Action[] = ['insert', 'update', 'delete', 'read'];
/** the rows are read with this statement timeout: a preview never holds a connection for long */
const STATEMENT_TIMEOUT_MS = 5000;

/** A mistake in the request: 400 with each problem's path (inside the sink block, as for POST /api/sinks). */
class PreviewError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly problems: ApiProblem[] = [],
  ) {
    super(message);
  }
}

/**
 * `POST /api/sinks/preview`: what a sink (not saved, maybe not valid yet) would write for a few
 * real rows of one of its tables. The rows are read from Postgres as text (the same text the
 * stream and backfills carry), planned by the sink exactly as the pipeline plans them, its
 * filter/transform/route run in their sandbox; nothing is written anywhere.
 */
export function registerPreviewRoute(app: FastifyInstance, deps: { config: SluiceConfig }): void {
  app.post<{ Body: unknown }>('/api/sinks/preview', async (req, reply) => {
    try {
      const { table, action, rows } = await preview(deps.config, req.body);
      // each record as the JSON text the sink renders: int8 and numeric values keep every digit
      const rowsJson = rows.map(({ recordText, ...rest }) => `{"record":${recordText},${JSON.stringify(rest).slice(1)}`);
      return reply.type('application/json; charset=utf-8').send(`{"table":${JSON.stringify(table)},"action":${JSON.stringify(action)},"rows":[${rowsJson.join(',')}]}`);
    } catch (err) {
      if (err instanceof PreviewError) {
        return reply.code(400).send({ error: { code: err.code, message: err.message, ...(err.problems.length > 0 ? { problems: err.problems } : {}) } });
      }
      if (err instanceof SluiceError) return apiError(reply, 400, err.code, err.message);
      return apiError(reply, 502, 'preview_failed', `could not read rows from Postgres: ${errorMessage(err)}`);
    }
  });
}

function readRequest(body: unknown): { block: Record<string, unknown>; limit: number; table: string | undefined; action: Action } {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new PreviewError('bad_request', 'the body must be a JSON object: {"sink": {…the sink block…}, "limit": 5}');
  }
  const req = body as Partial<Record<keyof ApiPreviewRequest, unknown>>;
  const { sink, limit = DEFAULT_PREVIEW_ROWS, table, action = 'insert' } = req;
  if (typeof sink !== 'object' || sink === null || Array.isArray(sink)) throw new PreviewError('bad_request', 'sink must be the sink block as a JSON object (as for POST /api/sinks)');
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_PREVIEW_ROWS) {
    throw new PreviewError('bad_request', `limit must be a whole number from 1 to ${MAX_PREVIEW_ROWS} (got ${JSON.stringify(limit)})`);
  }
  if (table !== undefined && typeof table !== 'string') throw new PreviewError('bad_request', 'table must be a string');
  if (typeof action !== 'string' || !(PREVIEW_ACTIONS as readonly string[]).includes(action)) {
    throw new PreviewError('bad_request', `action must be one of ${PREVIEW_ACTIONS.join(', ')} (got ${JSON.stringify(action)})`);
  }
  const block = sink as Record<string, unknown>;
  // the name does not matter for a preview: one still being typed is fine
  return { block: block.name === undefined || block.name === '' ? { ...block, name: 'preview' } : block, limit, table, action: action as Action };
}

/** A preview row before it is sent: its record as JSON text. */
type PlannedRow = Omit<ApiPreviewRow, 'record'> & { recordText: string };

async function preview(config: SluiceConfig, body: unknown): Promise<Omit<ApiPreview, 'rows'> & { rows: PlannedRow[] }> {
  const { block, limit, table: wanted, action } = readRequest(body);
  const parsed = parseSinkBlock(block, { redisNames: Object.keys(config.redis) });
  if (!parsed.ok) {
    const first = parsed.problems[0]!;
    throw new PreviewError('invalid_sink', `${first.path === '' ? '' : `${first.path}: `}${first.message}`, parsed.problems);
  }
  const cfg = parsed.sink;
  const sink = createSink(cfg);
  let functions: SinkFunctions;
  try {
    functions = SinkFunctions.fromConfig(cfg, process.cwd());
  } catch (err) {
    if (err instanceof FunctionError) throw new PreviewError('function_invalid', err.message, [{ path: err.kind, message: err.message }]);
    throw err;
  }
  const client = createTextClient(config.source.url, 'sluice-preview');
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(`set statement_timeout = ${STATEMENT_TIMEOUT_MS}`);
    const tableName = await chooseTable(client, cfg, wanted);
    const table = await readCatalogTable(client, tableName);
    if (!table) throw new PreviewError('table_not_found', `table ${tableName} does not exist`, [{ path: 'tables[0]', message: `table ${tableName} does not exist` }]);
    const ident = (n: string): string => `"${n.replace(/"/g, '""')}"`;
    const keys = table.info.keyIndexes.map((i) => ident(table.info.columns[i]!.name));
    const result = await client.query<(string | null)[]>({
      text: `SELECT ${table.info.columns.map((c) => ident(c.name)).join(', ')} FROM ${table.quoted}${keys.length > 0 ? ` ORDER BY ${keys.join(', ')}` : ''} LIMIT ${limit}`,
      rowMode: 'array',
    });
    const meta: MessageMeta = { commitLsn: 0n, commitTimeMicros: microsSince2000(Date.now()), sinkName: cfg.name };
    const changes: Change[] = result.rows.map((row, idx) => ({ action, table: table.info, row, oldRow: null, oldKind: null, idx }));
    return { table: table.info.qualifiedName, action, rows: planRows(sink, functions, changes, meta) };
  } finally {
    functions.dispose();
    await client.end().catch(() => undefined);
  }
}

/** The table asked for (one of the sink's), else the sink's first; `schema.*` is its first table. */
async function chooseTable(client: pg.Client, cfg: SinkConfig, wanted: string | undefined): Promise<string> {
  const pattern = wanted === undefined ? cfg.tables[0]! : wanted.includes('.') ? wanted : `public.${wanted}`;
  if (wanted !== undefined) {
    const [schema] = splitTable(pattern);
    if (!cfg.tables.includes(pattern) && !cfg.tables.includes(`${schema}.*`)) {
      throw new PreviewError('table_not_in_sink', `table ${pattern} is not one of the sink's tables (${cfg.tables.join(', ')})`);
    }
  }
  if (!pattern.endsWith('.*')) return pattern;
  const [schema] = splitTable(pattern);
  const r = await client.query<{ name: string }>(
    `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = $1 and c.relkind in ('r', 'p') and not c.relispartition order by c.relname limit 1`,
    [schema],
  );
  const first = r.rows[0];
  if (!first) throw new PreviewError('table_not_found', `schema ${schema} has no table`, [{ path: 'tables[0]', message: `schema ${schema} has no table` }]);
  return `${schema}.${first.name}`;
}

type Sink = ReturnType<typeof createSink>;

/** Each row as the pipeline would plan it: the functions' verdict, then the sink's commands or its reason to fail. */
function planRows(sink: Sink, functions: SinkFunctions, changes: readonly Change[], meta: MessageMeta): PlannedRow[] {
  const outcomes = functions.applySync(changes, meta);
  return changes.map((change, i) => {
    const record = recordJson(change.table, change.row);
    const outcome = outcomes[i]!;
    if ('skip' in outcome) return { recordText: record, skipped: true, commands: [], error: null };
    if ('error' in outcome) return { recordText: record, skipped: false, commands: [], error: { stage: functionStage(outcome.error), message: outcome.error } };
    const commands: ApiPreviewCommand[] = [];
    let failure: string | null = null;
    try {
      sink.plan(change, meta, { command: (cmd) => commands.push(describe(cmd)), fail: (_c, reason) => (failure ??= reason) }, outcome.extras);
    } catch (err) {
      failure = `internal error while planning this message (please report it): ${errorMessage(err)}`;
    }
    return { recordText: record, skipped: false, commands, error: failure === null ? null : { stage: 'sink', message: failure } };
  });
}

function functionStage(message: string): 'filter' | 'transform' | 'route' | 'function' {
  const m = /^(filter|transform|route)\b/.exec(message);
  return m ? (m[1] as 'filter' | 'transform' | 'route') : 'function';
}

function describe(cmd: RedisCommand): ApiPreviewCommand {
  const [name = '', key = null, ...args] = cmd;
  return { command: name, key, args };
}
