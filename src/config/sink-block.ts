// One sink given to the HTTP API (POST /api/sinks, PATCH /api/sinks/:name, SPEC §6): the same
// block a user writes under `sinks:` in sluice.yaml, as JSON. It is checked with the same schema
// and the same rules that apply to one sink in the file; problem paths are relative to the block
// ("key", "tables[1]", "redis"), not to the file ("sinks[0].key").
//
// Two differences with the file, both because the server is not on the caller's machine:
//  - filter, transform and route must be inline code: a file path would name a file of the
//    caller's that the server cannot read (or, worse, one of the server's);
//  - ${VAR} references are not replaced: the server's environment is not the caller's, and
//    substituting would hand its secrets to anyone allowed to create a sink.
// Whether the name is already taken is the caller's business (the set of sinks is runtime state).
import type { ConfigProblem } from './errors.js';
import { formatPath } from './errors.js';
import { isFunctionPath } from './function-path.js';
import { validate } from './issues.js';
import type { SchemaProblem } from './issues.js';
import type { SinkConfig } from './schema.js';
import { isRecord } from './schema-helpers.js';
import { defaultSinkRedis, FUNCTION_OPTIONS, sinkRedisProblem, sinkSchema } from './sink-schema.js';

export type { SinkConfig } from './schema.js';

export interface SinkBlockContext {
  /** the names of the connections under `redis:` in the running configuration */
  readonly redisNames: readonly string[];
}

export type SinkBlockResult = { ok: true; sink: SinkConfig } | { ok: false; problems: ConfigProblem[] };

/**
 * Validates one sink block (parsed JSON). On success the sink has every default filled in, its
 * `redis` too (the only connection, when it names none and there is exactly one). Otherwise every
 * problem found, each with its path in the block ("" for the block as a whole).
 */
export function parseSinkBlock(input: unknown, ctx: SinkBlockContext): SinkBlockResult {
  if (!isRecord(input)) {
    const got = input === null ? 'null' : Array.isArray(input) ? 'a list' : typeof input;
    return { ok: false, problems: [{ path: '', message: `must be a JSON object: the sink's block as written under sinks: in sluice.yaml (got ${got})` }] };
  }
  const result = validate(sinkSchema, input);
  const problems: SchemaProblem[] = result.success ? [] : [...result.problems];
  const flagged = (key: string): boolean => problems.some((p) => p.path[0] === key);

  if (!flagged('redis')) {
    const message =
      ctx.redisNames.length === 0 ? 'there is no redis connection to write to (define one under redis: in sluice.yaml)' : sinkRedisProblem(input.redis, ctx.redisNames);
    if (message !== undefined) problems.push({ path: ['redis'], message, unknownKey: false });
  }
  for (const option of FUNCTION_OPTIONS) {
    const value = input[option];
    if (typeof value === 'string' && isFunctionPath(value) && !flagged(option)) {
      problems.push({
        path: [option],
        message: `use an inline function in the API: ${JSON.stringify(value.trim())} is a file path, and the server cannot read the caller's files (give the code itself, e.g. "function ${option}(action, record, changes, metadata) { … }")`,
        unknownKey: false,
      });
    }
  }

  if (problems.length > 0 || !result.success) {
    return { ok: false, problems: inBlockOrder(problems, Object.keys(input)).map((p) => ({ path: formatPath(p.path), message: p.message })) };
  }
  const sink: SinkConfig = { ...result.data, redis: defaultSinkRedis(result.data.redis, ctx.redisNames) };
  return { ok: true, sink };
}

/** Problems about missing keys (or the whole block) first, then in the order of the keys in the block. */
function inBlockOrder(problems: readonly SchemaProblem[], keys: readonly string[]): SchemaProblem[] {
  const rank = (p: SchemaProblem): number => (p.path.length === 0 ? -1 : keys.indexOf(String(p.path[0])));
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => rank(a.p) - rank(b.p) || a.i - b.i)
    .map(({ p }) => p);
}
