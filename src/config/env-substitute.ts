// ${VAR} and ${VAR:-default} in sluice.yaml values.
//
// Substitution happens on the parsed YAML document, scalar by scalar, never on the raw text:
// a value taken from the environment cannot change the structure of the file (a password
// holding ": " or "#" stays a password), comments and keys are left alone, and every problem
// can be reported with the YAML path and line of the value it is in.
//
// Rules:
//  - ${VAR} is replaced by the variable's value; unset is an error (set but empty is "").
//  - ${VAR:-default} uses `default` when VAR is unset or empty; the default may itself contain
//    ${...} references.
//  - $${ is a literal "${" (no substitution). A "$" not followed by "{" is just a "$".
//  - References may be written anywhere a value may, even in flow collections where YAML would
//    otherwise read their braces as a mapping: `tls: { ca: ${CA_FILE} }` (see protectReferences).
//  - In an unquoted (plain) value, the result is read as YAML reads a plain value, so
//    `port: ${PORT}` gives a number and `backfill: ${BACKFILL:-false}` a boolean. A quoted or
//    block value always stays a string: `token: "${TOKEN}"`.
import { isAlias, isMap, isPair, isScalar, isSeq, Scalar } from 'yaml';
import type { Document, Node } from 'yaml';

export type Env = Readonly<Record<string, string | undefined>>;

export interface SubstitutionError {
  /** the variable concerned, when there is one */
  readonly variable?: string;
  readonly message: string;
}

export interface StringSubstitution {
  readonly value: string;
  /** names of the variables referenced (including in defaults that were used) */
  readonly variables: readonly string[];
  readonly errors: readonly SubstitutionError[];
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Index of the "}" closing the "${" that starts at `start`, or -1. */
function closingBrace(s: string, start: number): number {
  let depth = 0;
  for (let i = start + 2; i < s.length; i++) {
    if (s[i] === '$' && s[i + 1] === '{') {
      depth++;
      i++;
    } else if (s[i] === '}') {
      if (depth === 0) return i;
      depth--;
    }
  }
  return -1;
}

/** Replaces ${VAR} and ${VAR:-default} in one string. Never throws; problems are in `errors`. */
export function substituteEnv(text: string, env: Env): StringSubstitution {
  const variables: string[] = [];
  const errors: SubstitutionError[] = [];
  let out = '';
  let i = 0;
  while (i < text.length) {
    const dollar = text.indexOf('$', i);
    if (dollar < 0) {
      out += text.slice(i);
      break;
    }
    out += text.slice(i, dollar);
    if (text.startsWith('$${', dollar)) {
      out += '${';
      i = dollar + 3;
      continue;
    }
    if (text[dollar + 1] !== '{') {
      out += '$';
      i = dollar + 1;
      continue;
    }
    const end = closingBrace(text, dollar);
    if (end < 0) {
      errors.push({ message: `unterminated "\${" in ${JSON.stringify(text)} (write "$\${" for a literal "\${")` });
      out += text.slice(dollar);
      break;
    }
    const body = text.slice(dollar + 2, end);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!NAME_RE.test(name)) {
      errors.push({
        message: `invalid variable reference "\${${body}}": expected \${NAME} or \${NAME:-default}`,
      });
      out += text.slice(dollar, end + 1);
      i = end + 1;
      continue;
    }
    variables.push(name);
    const value = env[name];
    if (sep >= 0) {
      if (value === undefined || value === '') {
        const inner = substituteEnv(body.slice(sep + 2), env);
        variables.push(...inner.variables);
        errors.push(...inner.errors);
        out += inner.value;
      } else {
        out += value;
      }
    } else if (value === undefined) {
      errors.push({ variable: name, message: `environment variable ${name} is not set (write \${${name}:-default} to give a default)` });
      out += text.slice(dollar, end + 1);
    } else {
      out += value;
    }
    i = end + 1;
  }
  return { value: out, variables, errors };
}

// While the text is parsed, the braces of ${...} references are swapped for two private-use
// characters, so that YAML does not take them for flow mappings. The text keeps its length, so
// every position YAML reports is still right.
const OPEN = '\uE000';
const CLOSE = '\uE001';
const PROTECTED_RE = /[\uE000\uE001]/g;

/** Hides the braces of every ${...} reference (nested ones included) from the YAML parser. */
export function protectReferences(text: string): string {
  if (!text.includes('${')) return text;
  const chars = text.split('');
  for (let i = 0; i < chars.length - 1; i++) {
    if (chars[i] !== '$' || chars[i + 1] !== '{') continue;
    const end = closingBrace(text, i);
    if (end < 0) continue;
    chars[i + 1] = OPEN;
    chars[end] = CLOSE;
    i += 1;
  }
  return chars.join('');
}

/** Undoes protectReferences in a string taken from the parsed document. */
export function unprotect(s: string): string {
  return s.replace(PROTECTED_RE, (c) => (c === OPEN ? '{' : '}'));
}

/** Reads a plain (unquoted) YAML 1.2 scalar the way the core schema does. */
export function resolvePlainScalar(s: string): string | number | boolean | null {
  if (/^(?:~|null|Null|NULL)$/.test(s)) return null;
  if (/^(?:true|True|TRUE)$/.test(s)) return true;
  if (/^(?:false|False|FALSE)$/.test(s)) return false;
  if (/^[-+]?[0-9]+$/.test(s)) return Number(s);
  if (/^0o[0-7]+$/.test(s)) return parseInt(s.slice(2), 8);
  if (/^0x[0-9a-fA-F]+$/.test(s)) return parseInt(s.slice(2), 16);
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/.test(s)) return parseFloat(s);
  if (/^[-+]?\.(?:inf|Inf|INF)$/.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^\.(?:nan|NaN|NAN)$/.test(s)) return NaN;
  return s;
}

export type DataPath = readonly (string | number)[];

export interface DocumentSubstitutionProblem {
  /** path of the value in the data, e.g. ['http', 'token'] */
  readonly path: DataPath;
  readonly node: Node;
  readonly variable?: string;
  readonly message: string;
}

export interface DocumentSubstitution {
  readonly problems: DocumentSubstitutionProblem[];
  /** the values that were substituted: path → variables referenced */
  readonly substituted: { readonly path: DataPath; readonly variables: readonly string[] }[];
}

function keyOf(key: unknown): string {
  if (isScalar(key)) {
    // keys are not substituted, but they are given back their braces
    if (typeof key.value === 'string') key.value = unprotect(key.value);
    return String(key.value);
  }
  return String(key);
}

/**
 * Substitutes environment variables in every string scalar value of `doc`, in place. Map keys
 * are not substituted. A value with a problem is left as written. `doc` should have been parsed
 * from protectReferences(text).
 */
export function substituteEnvInDocument(doc: Document, env: Env): DocumentSubstitution {
  const problems: DocumentSubstitutionProblem[] = [];
  const substituted: DocumentSubstitution['substituted'] = [];

  const visitScalar = (node: Scalar, path: DataPath) => {
    if (typeof node.value !== 'string') return;
    const text = unprotect(node.value);
    node.value = text;
    if (!text.includes('$')) return;
    const r = substituteEnv(text, env);
    if (r.errors.length > 0) {
      for (const e of r.errors) problems.push({ path, node, variable: e.variable, message: e.message });
      return;
    }
    if (r.value === text) return;
    node.value = node.type === Scalar.PLAIN ? resolvePlainScalar(r.value) : r.value;
    if (r.variables.length > 0) substituted.push({ path, variables: r.variables });
  };

  const visit = (node: unknown, path: DataPath) => {
    if (isScalar(node)) visitScalar(node, path);
    else if (isMap(node)) {
      for (const pair of node.items) {
        if (isPair(pair)) visit(pair.value, [...path, keyOf(pair.key)]);
      }
    } else if (isSeq(node)) node.items.forEach((item, i) => visit(item, [...path, i]));
    else if (isAlias(node)) {
      // substituted where its anchor is
    }
  };
  visit(doc.contents, []);
  return { problems, substituted };
}
