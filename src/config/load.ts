// Reads sluice.yaml: YAML → environment substitution → validation against the zod schema.
// Every problem found is reported at once, with its YAML path and line, in a ConfigError.
import { readFileSync } from 'node:fs';
import { dirname, normalize, resolve } from 'node:path';
import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document, Node } from 'yaml';
import { protectReferences, substituteEnvInDocument, unprotect } from './env-substitute.js';
import type { DataPath, Env } from './env-substitute.js';
import { ConfigError, formatPath } from './errors.js';
import type { ConfigProblem } from './errors.js';
import { validate } from './issues.js';
import { sluiceConfigSchema } from './schema.js';
import type { SluiceConfig } from './schema.js';

export { ConfigError } from './errors.js';
export type { ConfigProblem } from './errors.js';

export const DEFAULT_CONFIG_PATH = './sluice.yaml';

/** The config file to read: the --config value, else $SLUICE_CONFIG, else ./sluice.yaml. */
export function configPathFrom(argvPath: string | undefined, env: Env = process.env): string {
  if (argvPath !== undefined && argvPath !== '') return argvPath;
  const fromEnv = env.SLUICE_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return DEFAULT_CONFIG_PATH;
}

/** Reads, substitutes and validates a config file. Throws ConfigError on any problem. */
export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): SluiceConfig {
  const file = normalize(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
    throw new ConfigError(file, [{ path: '', message: `cannot read the configuration file: ${why}` }]);
  }
  return parseConfig(text, { file, env });
}

export interface ParseConfigOptions {
  /** the file name used in messages; relative TLS file paths are resolved against its directory */
  file: string;
  env: NodeJS.ProcessEnv;
}

/** Like loadConfig, from the text of the file. */
export function parseConfig(text: string, opts: ParseConfigOptions): SluiceConfig {
  const { file, env } = opts;
  const lineCounter = new LineCounter();
  const doc = parseDocument(protectReferences(text), { lineCounter, prettyErrors: false, uniqueKeys: true });

  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const { line, col } = lineCounter.linePos(e.pos[0]);
        return { path: '', line, column: col, message: `YAML syntax error: ${unprotect(e.message.split('\n')[0] ?? '')}` };
      }),
    );
  }

  const located = (path: DataPath, message: string): ConfigProblem => {
    const pos = locate(doc, lineCounter, path);
    return { path: formatPath(path), line: pos.line, column: pos.column, message };
  };

  const substitution = substituteEnvInDocument(doc, env);
  const problems: ConfigProblem[] = substitution.problems.map((p) => located(p.path, p.message));
  const envProblemPaths = substitution.problems.map((p) => p.path);

  if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    throw new ConfigError(file, [{ path: '', line: 1, column: 1, message: 'the file is empty: expected a mapping with source, redis and sinks' }]);
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 });
  } catch (err) {
    throw new ConfigError(file, [{ path: '', message: `YAML error: ${(err as Error).message}` }]);
  }

  const result = validate(sluiceConfigSchema, data);
  if (!result.success) {
    for (const problem of result.problems) {
      const path = problem.path;
      // a value whose substitution failed is reported once, for the substitution
      if (envProblemPaths.some((p) => startsWith(path, p))) continue;
      let message = problem.message;
      const sub = problem.unknownKey ? undefined : substitution.substituted.find((s) => samePath(s.path, path));
      if (sub !== undefined) {
        // don't echo values that came from the environment: they may be secrets
        const vars = sub.variables.map((v) => `\${${v}}`).join(', ');
        const quoteHint = message.startsWith('must be a string') ? `; quote it to keep it a string: "${sub.variables.length === 1 ? `\${${sub.variables[0]}}` : '...'}"` : '';
        message = `${message.replace(/ \(got .*\)$/s, '')} (value from ${vars}${quoteHint})`;
      }
      problems.push(located(path, message));
    }
  }
  if (problems.length > 0 || !result.success) {
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    throw new ConfigError(file, problems);
  }
  return resolveFilePaths(result.data, dirname(resolve(file)));
}

/** TLS certificate and key paths are relative to the directory of the configuration file. */
function resolveFilePaths(cfg: SluiceConfig, baseDir: string): SluiceConfig {
  for (const conn of Object.values(cfg.redis)) {
    const tls = conn.tls;
    if (tls === undefined) continue;
    if (tls.ca !== undefined) tls.ca = resolve(baseDir, tls.ca);
    if (tls.cert !== undefined) tls.cert = resolve(baseDir, tls.cert);
    if (tls.key !== undefined) tls.key = resolve(baseDir, tls.key);
  }
  return cfg;
}

function samePath(a: DataPath, b: DataPath): boolean {
  return a.length === b.length && a.every((s, i) => String(s) === String(b[i]));
}

function startsWith(path: DataPath, prefix: DataPath): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => String(s) === String(path[i]));
}

/**
 * Where a data path is in the file: the key of a mapping entry, the start of a list item, or
 * (for a key that is missing) the mapping that should hold it.
 */
function locate(doc: Document, lc: LineCounter, path: DataPath): { line: number; column: number } {
  let node: unknown = doc.contents;
  let offset = (node as Node | null)?.range?.[0] ?? 0;
  for (const seg of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (pair === undefined) break;
      const keyRange = (pair.key as Node | null)?.range;
      if (keyRange) offset = keyRange[0];
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)] as Node | undefined;
      if (item === undefined) break;
      if (item.range) offset = item.range[0];
      node = item;
    } else {
      break;
    }
  }
  const { line, col } = lc.linePos(offset);
  return { line, column: col };
}
