// Fuzzing the config loader: random YAML text, mutated valid files and random documents built
// from valid ones with parts replaced by anything. parseConfig must return a config or throw a
// ConfigError whose every problem has a path (a string, "" for the file as a whole) and a
// message; never another exception, never a hang. Fixed seeds: a failure is replayed exactly.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';
import { ConfigError, parseConfig } from '../../src/config/load.js';

const ENV = { HOST: '127.0.0.1', PORT: '6380', EMPTY: '', TOKEN: 's3cret token', '__proto__': 'x' };

/** Runs the loader on `text`: fine if it returns or throws a ConfigError with paths; fails otherwise. */
function load(text: string): void {
  try {
    const cfg = parseConfig(text, { file: 'fuzz.yaml', env: ENV });
    assert.equal(typeof cfg, 'object');
    assert.ok(Array.isArray(cfg.sinks));
  } catch (err) {
    if (!(err instanceof ConfigError)) {
      throw new Error(`not a ConfigError: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n--- input ---\n${text}`);
    }
    assert.ok(err.problems.length > 0, 'a ConfigError names at least one problem');
    for (const p of err.problems) {
      assert.equal(typeof p.path, 'string', JSON.stringify(p));
      assert.ok(typeof p.message === 'string' && p.message.length > 0, JSON.stringify(p));
      if (p.line !== undefined) assert.ok(Number.isInteger(p.line) && p.line >= 1, JSON.stringify(p));
    }
  }
}

const VALID = `source:
  url: postgres://postgres@127.0.0.1:5432/app
  slot: sluice
redis:
  cache:
    url: redis://user:pass@\${HOST}:\${PORT}/0
  secure:
    url: rediss://cache.internal:6380
    tls: { ca: ./ca.pem, insecure: false }
  ha:
    sentinel: { name: mymaster, nodes: [redis://127.0.0.1:26379] }
sinks:
  - name: products
    type: string
    redis: cache
    tables: [public.products]
    key: "product:{id}"
    filter: "record.status === 'active'"
  - name: feed
    type: list
    redis: cache
    tables: [orders, "app.*"]
    key: "feed:{customer_id}"
    max_length: 100
  - name: scores
    type: zset
    redis: secure
    tables: [scores]
    key: board
    member: "{player}"
    score: points
http:
  port: 7376
  host: 127.0.0.1
  token: "\${TOKEN}"
log:
  level: info
`;

/** Pieces YAML gives meaning to, and values the schema looks at. */
const TOKENS = [
  ':', ': ', '-', '- ', '? ', '{', '}', '[', ']', ',', '#', '&a ', '*a', '<<: *a', '!!binary ', '!!set ', '!!omap ', '!!str ', '!!int ',
  '!!float ', '!!timestamp ', '!custom ', '|', '>', '|-', '"', "'", '\n', '\n  ', '\n    ', '\t', '---\n', '...\n', '%YAML 1.2\n', '${HOST}',
  '${NOPE}', '${', '$${', '${EMPTY:-x}', '${__proto__}', 'source', 'url', 'redis', 'sinks', 'name', 'type', 'tables', 'key', 'http', 'port',
  'token', 'postgres://p@h/db', 'redis://h:1', 'rediss://h', 'string', 'hash', 'list', 'zset', 'pubsub', '__proto__', 'constructor',
  'prototype', 'toString', 'hasOwnProperty', '0', '-1', '1e400', '0x10', '.inf', '.nan', 'null', '~', 'true', 'yes', '\u0000', '\ufeff',
  '\u2028', '😀', 'é',
];

const yamlish = fc.array(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...TOKENS) }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) }), { maxLength: 80 }).map((a) => a.join(''));

/** A character-level mutation of a text: delete, insert, replace or duplicate a span. */
const mutation = fc.tuple(fc.constantFrom('delete', 'insert', 'replace', 'duplicate', 'swapLines'), fc.nat(), fc.nat({ max: 40 }), fc.constantFrom(...TOKENS));

function mutate(text: string, ops: readonly [string, number, number, string][]): string {
  let t = text;
  for (const [op, at, len, token] of ops) {
    const i = t.length === 0 ? 0 : at % t.length;
    if (op === 'delete') t = t.slice(0, i) + t.slice(i + len);
    else if (op === 'insert') t = t.slice(0, i) + token + t.slice(i);
    else if (op === 'replace') t = t.slice(0, i) + token + t.slice(i + Math.min(len, token.length + 3));
    else if (op === 'duplicate') t = t.slice(0, i) + t.slice(i, i + len) + t.slice(i);
    else {
      const lines = t.split('\n');
      const a = at % lines.length;
      const b = (at + len) % lines.length;
      [lines[a], lines[b]] = [lines[b]!, lines[a]!];
      t = lines.join('\n');
    }
  }
  return t;
}

/** Any JSON-like value with keys that could upset an object (prototype names, empty, odd characters). */
const key = fc.oneof(fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', '', 'url', 'name', 'type', 'tables', 'key', 'tls', 'a.b', '0'), fc.string({ maxLength: 6 }));
const { value: anyValue } = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double(),
    fc.string({ maxLength: 20 }),
    fc.constantFrom('postgres://u:p@h:5432/d', 'redis://h:6379', 'rediss://h:1', 'string', 'list', 'public.t', '{id}', '${HOST}', '${NOPE}'),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 4 }),
  ),
}));

const BASE = {
  source: { url: 'postgres://postgres@127.0.0.1:5432/app' },
  redis: { main: { url: 'redis://127.0.0.1:6379' } },
  sinks: [
    { name: 'a', type: 'string', tables: ['t'], key: 'k:{id}' },
    { name: 'b', type: 'hash', tables: ['u'], key: 'h:{id}', field: '{id}' },
    { name: 'c', type: 'stream', tables: ['v'], key: 's', max_length: 10 },
  ],
  http: { port: 7376, token: 'x' },
};

/** BASE with the value at a random path replaced by anything (or a random key added there). */
const replaced = fc.tuple(fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), anyValue, fc.boolean(), key).map(([steps, value, add, newKey]) => {
  const doc = structuredClone(BASE) as unknown as Record<string, unknown>;
  let node: unknown = doc;
  for (let i = 0; i < steps.length; i++) {
    if (node === null || typeof node !== 'object') break;
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const k = keys[steps[i]! % keys.length]!;
    const last = i === steps.length - 1;
    const child = (node as Record<string, unknown>)[k];
    if (last || child === null || typeof child !== 'object') {
      if (add && !Array.isArray(node)) Object.defineProperty(node, newKey, { value, enumerable: true, configurable: true, writable: true });
      else (node as Record<string, unknown>)[k] = value;
      break;
    }
    node = child;
  }
  return toYaml(doc);
});

describe('config loader fuzzing (random YAML never raises anything but ConfigError with paths)', { timeout: 300_000 }, () => {
  test('random YAML-ish text', () => {
    fc.assert(fc.property(yamlish, load), { seed: 1301, numRuns: 600 });
  });

  test('mutations of a valid file', () => {
    load(VALID); // the starting point is valid
    assert.doesNotThrow(() => parseConfig(VALID, { file: 'fuzz.yaml', env: ENV }));
    fc.assert(fc.property(fc.array(mutation, { minLength: 1, maxLength: 6 }), (ops) => load(mutate(VALID, ops))), { seed: 1302, numRuns: 300 });
  });

  test('valid documents with a part replaced by anything', () => {
    fc.assert(fc.property(replaced, load), { seed: 1303, numRuns: 300 });
  });

  test('random unicode text', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), load), { seed: 1304, numRuns: 500 });
  });

  test('cases found or feared, kept', () => {
    const cases = [
      '',
      '\ufeff',
      '---\n...\n',
      '- a\n- b\n',
      'just text',
      '42',
      'source: &a\n  url: *a\n',
      'a: &a [*a]\n',
      // a billion laughs: aliases expanded without end are refused
      `a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n`,
      '__proto__: { polluted: true }\nsource: { url: "postgres://h/d" }\n',
      'source:\n  __proto__: { url: "postgres://h/d" }\n',
      'redis:\n  __proto__: { url: "redis://h" }\n  constructor: { url: "redis://h" }\n',
      'sinks: !!set { a, b }\n',
      'sinks: !!omap [ a: 1 ]\n',
      'source: !!binary aGVsbG8=\n',
      'source: { url: !!timestamp 2001-12-14 }\n',
      'http: { port: 1e400, host: .nan }\n',
      '? [a, b]\n: c\n',
      '? { a: 1 }\n: c\nsource: 1\n',
      'source: { url: "${NOPE}" }\nredis: { "${": 1 }\n',
      'source:\n  url: ${HOST:-${NOPE:-${EMPTY}}}\n',
      `sinks:\n${'  - '.repeat(1)}${'['.repeat(200)}${']'.repeat(200)}\n`,
      `a: ${'['.repeat(5000)}\n`,
      'sinks:\n  - name: "\u0000"\n    type: string\n    tables: ["t\u0000"]\n',
    ];
    for (const c of cases) load(c);
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched');
  });
});
