// Parser for Postgres array literals as printed by array_out (text format), e.g.
//   {1,2,NULL}   {"a b","with \"quote\"",NULL,"NULL"}   {{1,2},{3,4}}   {}   [0:1]={1,2}
// It follows array_in's rules closely enough to also accept hand-written literals: whitespace
// around elements is ignored, unquoted NULL (any case) is SQL NULL while quoted "NULL" is the
// string, backslash escapes work inside and outside quotes. Dimension decorations ([lb:ub]=)
// are skipped: lower bounds are lost, the nesting is kept.
//
// The hot-path entry point, arrayLiteralToJson, writes the JSON array text directly while it
// walks the literal (no intermediate tree): each non-NULL element goes through the caller's
// `element` function, which must return a ready JSON value.

/** A parsed array: elements are the element's text output, or null for SQL NULL. */
export type PgArray = (string | null | PgArray)[];

const LBRACE = 123; // {
const RBRACE = 125; // }
const LBRACKET = 91; // [
const QUOTE = 34; // "
const BACKSLASH = 92; // \

/** array_isspace: the whitespace array_in skips */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

function skipSpace(text: string, i: number): number {
  const n = text.length;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  return i;
}

function isNullWord(s: string): boolean {
  return s.length === 4 && (s === 'NULL' || s.toUpperCase() === 'NULL');
}

/**
 * Converts a Postgres array literal to JSON array text. `element` receives each non-NULL
 * element's text (unquoted, unescaped) and returns its JSON; SQL NULL becomes `null`.
 * `delimiter` is the element type's typdelim (',' for everything built in except box: ';').
 * Returns undefined when `text` is not a well-formed array literal.
 */
export function arrayLiteralToJson(
  text: string,
  element: (raw: string) => string,
  delimiter = ',',
): string | undefined {
  const delim = delimiter.charCodeAt(0);
  const n = text.length;
  let i = skipSpace(text, 0);
  if (i < n && text.charCodeAt(i) === LBRACKET) {
    // dimension decoration, e.g. [0:1][1:2]=
    const eq = text.indexOf('=', i);
    if (eq < 0) return undefined;
    i = skipSpace(text, eq + 1);
  }
  if (i >= n || text.charCodeAt(i) !== LBRACE) return undefined;

  let out = '';
  let depth = 0;
  let expectElement = true; // false: expecting a delimiter or a closing brace
  let justOpened = false; // '{' was the last token: a '}' closes an empty array
  for (;;) {
    i = skipSpace(text, i);
    if (i >= n) return undefined;
    const c = text.charCodeAt(i);
    if (!expectElement) {
      if (c === delim) {
        out += ',';
        i++;
        expectElement = true;
      } else if (c === RBRACE) {
        out += ']';
        i++;
        if (--depth === 0) break;
      } else {
        return undefined;
      }
      continue;
    }
    if (c === LBRACE) {
      out += '[';
      depth++;
      i++;
      justOpened = true;
      continue;
    }
    if (c === RBRACE && justOpened) {
      out += ']';
      i++;
      justOpened = false;
      expectElement = false;
      if (--depth === 0) break;
      continue;
    }
    justOpened = false;
    expectElement = false;

    if (c === QUOTE) {
      // quoted element: everything up to the closing quote, backslash escapes the next char
      let j = i + 1;
      let start = j;
      let s = '';
      for (;;) {
        if (j >= n) return undefined;
        const d = text.charCodeAt(j);
        if (d === QUOTE) break;
        if (d === BACKSLASH) {
          s += text.slice(start, j);
          j++;
          if (j >= n) return undefined;
          start = j; // the escaped char starts the next run
        }
        j++;
      }
      s = start === i + 1 ? text.slice(start, j) : s + text.slice(start, j);
      out += element(s);
      i = j + 1;
      continue;
    }

    // unquoted element: up to the delimiter or '}', trailing whitespace dropped
    let j = i;
    let start = i;
    let s = '';
    let escaped = false;
    let keep = 0; // length of s that must survive trimming (up to the last escaped char)
    for (;;) {
      if (j >= n) return undefined;
      const d = text.charCodeAt(j);
      if (d === delim || d === RBRACE) break;
      if (d === LBRACE || d === QUOTE) return undefined;
      if (d === BACKSLASH) {
        escaped = true;
        s += text.slice(start, j);
        j++;
        if (j >= n) return undefined;
        s += text[j];
        keep = s.length;
        j++;
        start = j;
        continue;
      }
      j++;
    }
    if (!escaped) {
      let end = j;
      while (end > i && isSpace(text.charCodeAt(end - 1))) end--;
      if (end === i) return undefined; // empty unquoted element
      const raw = text.slice(i, end);
      out += isNullWord(raw) ? 'null' : element(raw);
    } else {
      // an escaped char is never NULL's marker nor trimmed away
      s += text.slice(start, j);
      let k = s.length;
      while (k > keep && isSpace(s.charCodeAt(k - 1))) k--;
      out += element(k === s.length ? s : s.slice(0, k));
    }
    i = j;
  }
  if (skipSpace(text, i) !== n) return undefined;
  return out;
}

function quoteString(s: string): string {
  return JSON.stringify(s);
}

/**
 * Parses a Postgres array literal into nested arrays of element texts (null for SQL NULL).
 * Returns undefined when `text` is not a well-formed array literal.
 */
export function parseArrayLiteral(text: string, delimiter = ','): PgArray | undefined {
  const json = arrayLiteralToJson(text, quoteString, delimiter);
  return json === undefined ? undefined : (JSON.parse(json) as PgArray);
}
