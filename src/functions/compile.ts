// A sink's `filter`, `transform` and `route` (SPEC §4 "Functions"): from the config value to
// JavaScript the sandbox can run. Three forms are accepted, TypeScript or JavaScript:
//
//   inline declaration   function transform(action, record, changes, metadata) { … }
//   bare expression      record.status === 'active'            (filter only)
//   file                 ./functions/route.ts                  (relative to the config file,
//                                                               default or named export)
//
// esbuild strips the types and turns ES module syntax into CommonJS. The result is wrapped in a
// factory `function (module, exports, require) { … }` that the sandbox calls once at start: its
// `require` refuses everything, so an `import` fails right there, with a clear error.
import { readFileSync } from 'node:fs';
import { extname, isAbsolute, resolve } from 'node:path';
import { transformSync, type Message, type TransformFailure } from 'esbuild';
import { SluiceError } from '../util/errors.js';
import { isFunctionPath } from '../config/function-path.js';

export { isFunctionPath };

export const FUNCTION_KINDS = ['filter', 'transform', 'route'] as const;
export type FunctionKind = (typeof FUNCTION_KINDS)[number];

/** Sequin's signature, shared by the three kinds. */
export const FUNCTION_PARAMS = 'action, record, changes, metadata';

export class FunctionError extends SluiceError {
  constructor(
    readonly sink: string,
    readonly kind: FunctionKind,
    detail: string,
  ) {
    super('function_invalid', `sink "${sink}": ${kind}: ${detail}`);
    this.name = 'FunctionError';
  }
}

export interface CompiledFunction {
  readonly kind: FunctionKind;
  readonly form: 'declaration' | 'expression' | 'file';
  /** "inline" or the file's absolute path */
  readonly origin: string;
  /**
   * A JavaScript function expression `function (module, exports, require) { …; return fn; }`
   * whose call returns the user's function (or something else, reported with `missing`).
   */
  readonly factory: string;
  /** the error when the code runs but does not provide the function */
  readonly missing: string;
}

export interface CompileOptions {
  readonly sink: string;
  /** directory of the config file: file paths are relative to it */
  readonly configDir: string;
}

export function compileFunction(kind: FunctionKind, value: string, opts: CompileOptions): CompiledFunction {
  const fail = (detail: string): never => {
    throw new FunctionError(opts.sink, kind, detail);
  };
  const text = value.trim();
  if (text === '') fail('is empty');
  const example = `function ${kind}(${FUNCTION_PARAMS}) { … }`;

  if (isFunctionPath(text)) {
    const path = isAbsolute(text) ? text : resolve(opts.configDir, text);
    let source = '';
    try {
      source = readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'is a directory' : (err as Error).message;
      fail(`cannot read ${text} (${path}): ${why}`);
    }
    const ext = extname(path);
    const js = transpile(source, ext === '.ts' || ext === '.mts' ? 'ts' : 'js', text, 0, fail);
    return {
      kind,
      form: 'file',
      origin: path,
      factory: `function (module, exports, require) {\n"use strict";\n${js}\n;return typeof module.exports === "function" ? module.exports : module.exports != null && typeof module.exports.default === "function" ? module.exports.default : module.exports != null ? module.exports[${JSON.stringify(kind)}] : undefined;\n}`,
      missing: `${text} does not export a function: write \`export default ${example}\` or \`export ${example}\``,
    };
  }

  const declared = new RegExp(`\\bfunction\\s+${kind}\\s*[(<]`).test(text);
  if (kind === 'filter' && !declared) {
    // a bare expression; on a line of its own so that error positions need only a line shift
    const js = transpile(`function filter(${FUNCTION_PARAMS}) { return (\n${text}\n); }`, 'ts', 'filter', 1, fail);
    return { kind, form: 'expression', origin: 'inline', factory: factory(js, kind), missing: 'the expression did not compile to a filter function' };
  }
  const js = transpile(text, 'ts', kind, 0, fail);
  const missing =
    kind === 'filter'
      ? `inline code must be a boolean expression (record.active === true) or a function declaration named filter: ${example}`
      : `inline code must be a function declaration named ${kind}: ${example}`;
  if (!declared) fail(missing);
  return { kind, form: 'declaration', origin: 'inline', factory: factory(js, kind), missing };
}

function factory(js: string, kind: FunctionKind): string {
  return `function (module, exports, require) {\n${js}\n;return typeof ${kind} === "function" ? ${kind} : undefined;\n}`;
}

/** TypeScript/JavaScript → CommonJS JavaScript; syntax errors become one clear sentence. */
function transpile(source: string, loader: 'ts' | 'js', name: string, lineShift: number, fail: (detail: string) => never): string {
  try {
    return transformSync(source, { loader, format: 'cjs', target: 'es2022', sourcefile: name, logLevel: 'silent' }).code;
  } catch (err) {
    const errors = (err as Partial<TransformFailure>).errors;
    if (!Array.isArray(errors) || errors.length === 0) return fail(`cannot be compiled: ${(err as Error).message}`);
    return fail(errors.slice(0, 3).map((e) => describeMessage(e, lineShift)).join('; '));
  }
}

function describeMessage(m: Message, lineShift: number): string {
  const loc = m.location;
  if (!loc) return `syntax error: ${m.text}`;
  const line = Math.max(1, loc.line - lineShift);
  return `syntax error at line ${line}, column ${loc.column + 1}: ${m.text}${loc.lineText.trim() ? ` (in: ${loc.lineText.trim().slice(0, 80)})` : ''}`;
}
