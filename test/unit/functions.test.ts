import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SinkFunctions, FunctionError, type FunctionOutcome, type SandboxInput, type SandboxOptions } from '../../src/functions/index.js';
import { compileFunction, isFunctionPath } from '../../src/functions/compile.js';
import { buildTableInfo } from '../../src/core/table-info.js';
import type { Change } from '../../src/core/change.js';
import type { MessageMeta } from '../../src/core/render.js';
import { createStringSink } from '../../src/sinks/string-sink.js';
import type { PlanOutput, RedisCommand } from '../../src/sinks/sink.js';

type Cfg = { name?: string; type?: 'string' | 'zset' | 'pubsub'; filter?: string; transform?: string; route?: string };

let dir: string;
const open: SinkFunctions[] = [];

function fns(cfg: Cfg, opts?: SandboxOptions): SinkFunctions {
  const f = SinkFunctions.fromConfig({ name: cfg.name ?? 'products', type: cfg.type ?? 'string', filter: cfg.filter, transform: cfg.transform, route: cfg.route }, dir, opts);
  open.push(f);
  return f;
}

function input(record: Record<string, unknown>, action: SandboxInput['action'] = 'insert', changes: Record<string, unknown> | null = null): SandboxInput {
  return { action, recordJson: JSON.stringify(record), changesJson: JSON.stringify(changes), metadataJson: '{"table_schema":"public","table_name":"products","sink":{"name":"products"}}' };
}

const rows = [
  { id: 1, name: 'Lamp', price: 9.5, status: 'active' },
  { id: 2, name: 'Desk', price: 120, status: 'inactive' },
  { id: 3, name: 'Chair', price: 45, status: 'active' },
];

function errorOf(o: FunctionOutcome | undefined): string {
  assert.ok(o && 'error' in o, `expected an error, got ${JSON.stringify(o)}`);
  return o.error;
}

function extrasOf(o: FunctionOutcome | undefined) {
  assert.ok(o && 'extras' in o, `expected extras, got ${JSON.stringify(o)}`);
  return o.extras;
}

function compileError(cfg: Cfg): string {
  try {
    fns(cfg);
  } catch (err) {
    assert.ok(err instanceof FunctionError, `expected a FunctionError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('expected a compile error');
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-fn-'));
});

after(() => {
  for (const f of open) f.dispose();
  rmSync(dir, { recursive: true, force: true });
});

describe('filter', () => {
  test('a bare expression', () => {
    const out = fns({ filter: "record.status === 'active'" }).applyInputsSync(rows.map((r) => input(r)));
    assert.deepEqual(out, [{ extras: {} }, { skip: true }, { extras: {} }]);
  });

  test('a bare expression with TypeScript', () => {
    const out = fns({ filter: '(record as { price: number }).price < 100 && action !== "delete"' }).applyInputsSync([input(rows[0]!), input(rows[1]!), input(rows[2]!, 'delete')]);
    assert.deepEqual(out, [{ extras: {} }, { skip: true }, { skip: true }]);
  });

  test('an inline declaration using all four arguments', () => {
    const f = fns({
      filter: `function filter(action: string, record: Record<string, unknown>, changes: Record<string, unknown> | null, metadata: { table_name: string }): boolean {
        return action === 'update' && changes !== null && 'price' in changes && metadata.table_name === 'products';
      }`,
    });
    const out = f.applyInputsSync([input(rows[0]!, 'update', { price: 8 }), input(rows[0]!, 'update', { name: 'x' }), input(rows[0]!, 'insert')]);
    assert.deepEqual(out, [{ extras: {} }, { skip: true }, { skip: true }]);
  });

  test('must return a boolean', () => {
    const out = fns({ filter: 'record.name' }).applyInputsSync([input(rows[0]!), input({ id: 4 })]);
    assert.equal(errorOf(out[0]), 'filter returned an unusable value: expected true or false (got "Lamp")');
    assert.equal(errorOf(out[1]), 'filter returned an unusable value: expected true or false (got undefined)');
  });
});

describe('transform', () => {
  test('an inline declaration with types; objects are stored as JSON', () => {
    const f = fns({
      transform: `function transform(action: string, record: { name: string; price: number }, changes: unknown, metadata: unknown) {
        return { name: record.name, price: record.price };
      }`,
    });
    const out = f.applyInputsSync([input(rows[0]!)]);
    assert.deepEqual(out, [{ extras: { value: '{"name":"Lamp","price":9.5}' } }]);
  });

  test('strings and numbers are stored as they are; null and booleans as JSON', () => {
    const f = fns({ transform: 'function transform(a, r) { return r.v }' });
    const out = f.applyInputsSync([input({ v: 'plain' }), input({ v: 42.5 }), input({ v: null }), input({ v: true }), input({ v: [1, 'a'] })]);
    assert.deepEqual(
      out.map((o) => extrasOf(o).value),
      ['plain', '42.5', 'null', 'true', '[1,"a"]'],
    );
  });

  test('unusable results fail the message with the reason', () => {
    const f = fns({
      transform: `function transform(action, record) {
        if (record.id === 1) return undefined;
        if (record.id === 2) return () => 1;
        if (record.id === 3) { const o: any = {}; o.self = o; return o; }
        if (record.id === 4) return Promise.resolve(1);
        return 'ok';
      }`,
    });
    const out = f.applyInputsSync([1, 2, 3, 4, 5].map((id) => input({ id })));
    assert.equal(errorOf(out[0]), 'transform returned an unusable value: undefined (return the value to store)');
    assert.equal(errorOf(out[1]), 'transform returned an unusable value: a function');
    assert.match(errorOf(out[2]), /^transform returned an unusable value: cannot be serialized as JSON: TypeError: Converting circular structure to JSON/);
    assert.equal(errorOf(out[3]), 'transform returned an unusable value: a Promise (functions must be synchronous)');
    assert.deepEqual(out[4], { extras: { value: 'ok' } });
  });

  test('mutating the record does not leak into route', () => {
    const f = fns({
      transform: 'function transform(a, record) { delete record.secret; record.name = "changed"; return record }',
      route: 'function route(a, record) { return { key: "p:" + record.name + ":" + (record.secret ?? "gone") } }',
    });
    const out = f.applyInputsSync([input({ name: 'Lamp', secret: 's3' })]);
    assert.deepEqual(out, [{ extras: { value: '{"name":"changed"}', route: { key: 'p:Lamp:s3' } } }]);
  });
});

describe('route', () => {
  test('key, action and expire_ms', () => {
    const f = fns({ route: 'function route(action, record) { return { key: `product:${record.id}`, expire_ms: 60000, action: record.status === "inactive" ? "delete" : undefined } }' });
    const out = f.applyInputsSync(rows.map((r) => input(r)));
    assert.deepEqual(out, [
      { extras: { route: { key: 'product:1', expire_ms: 60000 } } },
      { extras: { route: { key: 'product:2', expire_ms: 60000, action: 'delete' } } },
      { extras: { route: { key: 'product:3', expire_ms: 60000 } } },
    ]);
  });

  test('each field is validated', () => {
    const f = fns({
      type: 'zset',
      route: `function route(a, r) {
        switch (r.case) {
          case 1: return { expire_ms: -5 };
          case 2: return { expire_ms: 1.5 };
          case 3: return { action: 'upsert' };
          case 4: return { score: Infinity };
          case 5: return { key: '' };
          case 6: return { channel: 'c' };
          case 7: return 'key';
          case 8: return null;
          case 9: return { member: 7, score: 2.5 };
        }
      }`,
    });
    const out = f.applyInputsSync([1, 2, 3, 4, 5, 6, 7, 8, 9].map((c) => input({ case: c })));
    assert.equal(errorOf(out[0]), 'route returned an unusable value: expire_ms must be a positive integer (got -5)');
    assert.equal(errorOf(out[1]), 'route returned an unusable value: expire_ms must be a positive integer (got 1.5)');
    assert.equal(errorOf(out[2]), 'route returned an unusable value: action must be one of insert, update, delete, read (got "upsert")');
    assert.equal(errorOf(out[3]), 'route returned an unusable value: score must be a finite number (got Infinity)');
    assert.equal(errorOf(out[4]), 'route returned an unusable value: key must be a non-empty string (got "")');
    assert.equal(errorOf(out[5]), 'route returned an unusable value: unknown field "channel" (this sink takes key, action, expire_ms, member, score)');
    assert.equal(errorOf(out[6]), 'route returned an unusable value: expected an object like {key, action, expire_ms} (got "key")');
    assert.equal(errorOf(out[7]), 'route returned an unusable value: expected an object like {key, action, expire_ms} (got null)');
    assert.deepEqual(out[8], { extras: { route: { member: '7', score: 2.5 } } });
  });

  test('pubsub sinks route channels', () => {
    const f = fns({ type: 'pubsub', route: 'function route(a, r) { return { channel: "orders:" + r.id } }' });
    assert.deepEqual(f.applyInputsSync([input({ id: 5 })]), [{ extras: { route: { channel: 'orders:5' } } }]);
  });
});

describe('files', () => {
  test('a .ts file with a default export, relative to the config directory', () => {
    writeFileSync(
      join(dir, 'transform.ts'),
      `interface Product { name: string; price: number }
       const round = (n: number): number => Math.round(n * 100) / 100;
       export default function transform(action: string, record: Product): { name: string; price: number } {
         return { name: record.name.toUpperCase(), price: round(record.price * 1.2) };
       }`,
    );
    const out = fns({ transform: './transform.ts' }).applyInputsSync([input(rows[0]!)]);
    assert.deepEqual(out, [{ extras: { value: '{"name":"LAMP","price":11.4}' } }]);
  });

  test('a .js file with a named export; a .js file with module.exports', () => {
    writeFileSync(join(dir, 'route.js'), 'export function route(action, record) { return { key: "r:" + record.id } }\nexport const other = 1;');
    writeFileSync(join(dir, 'filter.js'), 'module.exports = function (action, record) { return record.id > 1 }');
    const f = fns({ route: 'route.js', filter: './filter.js' });
    assert.deepEqual(f.applyInputsSync([input(rows[0]!), input(rows[1]!)]), [{ skip: true }, { extras: { route: { key: 'r:2' } } }]);
  });

  test('a file must export the function', () => {
    writeFileSync(join(dir, 'nothing.ts'), 'export const transform = 42;');
    assert.equal(
      compileError({ transform: './nothing.ts' }),
      'sink "products": transform: ' + join(dir, 'nothing.ts') + ': ./nothing.ts does not export a function: write `export default function transform(action, record, changes, metadata) { … }` or `export function transform(action, record, changes, metadata) { … }`',
    );
  });

  test('imports are refused at compile time', () => {
    writeFileSync(join(dir, 'imports.ts'), 'import { readFileSync } from "node:fs";\nexport default function transform() { return readFileSync("/etc/passwd", "utf8") }');
    assert.match(compileError({ transform: './imports.ts' }), /^sink "products": transform: .*imports\.ts: module loading is not allowed \(import or require of "node:fs"\)$/);
    writeFileSync(join(dir, 'requires.js'), 'const fs = require("fs");\nmodule.exports = function () { return 1 }');
    assert.match(compileError({ filter: './requires.js' }), /^sink "products": filter: .*requires\.js: module loading is not allowed \(import or require of "fs"\)$/);
  });

  test('a missing file', () => {
    assert.equal(compileError({ route: './nope.ts' }), `sink "products": route: cannot read ./nope.ts (${join(dir, 'nope.ts')}): file not found`);
  });

  test('paths and inline code are told apart', () => {
    assert.equal(isFunctionPath('./functions/route.ts'), true);
    assert.equal(isFunctionPath('route.js'), true);
    assert.equal(isFunctionPath("record.status === 'a.js'"), false);
    assert.equal(isFunctionPath('function route() {}'), false);
  });
});

describe('compile errors name the sink and the function', () => {
  test('syntax errors with their position', () => {
    assert.equal(compileError({ filter: 'record.a ===' }), 'sink "products": filter: syntax error at line 2, column 1: Unexpected ")" (in: ); })');
    assert.match(compileError({ transform: 'function transform(a, r) {\n  return r.;\n}' }), /^sink "products": transform: syntax error at line 2, column 12: Expected identifier but found ";"/);
  });

  test('inline code that is not a declaration named after its kind', () => {
    assert.equal(
      compileError({ transform: 'function t(a, r) { return r }' }),
      'sink "products": transform: inline code must be a function declaration named transform: function transform(action, record, changes, metadata) { … }',
    );
    assert.match(compileError({ route: '(a, r) => ({ key: r.id })' }), /inline code must be a function declaration named route/);
  });

  test('async functions are refused', () => {
    assert.equal(compileError({ transform: 'async function transform(a, r) { return r }' }), 'sink "products": transform: must be a plain synchronous function (async functions and generators are not supported)');
  });

  test('top-level code that never ends or throws', () => {
    assert.equal(compileError({ transform: 'for (;;) {}\nfunction transform() {}' }), 'sink "products": transform: its top-level code ran for more than 1000 ms');
    assert.equal(compileError({ transform: 'throw new RangeError("nope");\nfunction transform() {}' }), 'sink "products": transform: RangeError: nope');
  });

  test('a sink without functions has none', () => {
    const f = fns({});
    assert.equal(f.hasAny, false);
    assert.deepEqual(f.applyInputsSync([input(rows[0]!)]), [{ extras: {} }]);
  });

  test('compileFunction forms', () => {
    assert.equal(compileFunction('filter', 'record.a', { sink: 's', configDir: dir }).form, 'expression');
    assert.equal(compileFunction('filter', 'function filter(a, r) { return true }', { sink: 's', configDir: dir }).form, 'declaration');
  });
});

describe('the sandbox', () => {
  test('a throw fails that message only', () => {
    const f = fns({ transform: 'function transform(a, r) { if (r.id === 2) { const x: any = null; return x.boom; } return r.name }' });
    const out = f.applyInputsSync(rows.map((r) => input(r)));
    assert.deepEqual(out[0], { extras: { value: 'Lamp' } });
    assert.equal(errorOf(out[1]), "transform threw: TypeError: Cannot read properties of null (reading 'boom')");
    assert.deepEqual(out[2], { extras: { value: 'Chair' } });
    const thrown = fns({ filter: 'function filter() { throw "plain" }' }).applyInputsSync([input(rows[0]!)]);
    assert.equal(errorOf(thrown[0]), 'filter threw: a thrown string (plain)');
  });

  test('an infinite loop times out; the other messages still get their results', () => {
    const f = fns({ transform: 'function transform(a, r) { if (r.id === 2) for (;;) {} return r.name }', route: 'function route(a, r) { return { key: "k" + r.id } }' });
    const out = f.applyInputsSync(rows.map((r) => input(r)));
    assert.deepEqual(out[0], { extras: { value: 'Lamp', route: { key: 'k1' } } });
    assert.equal(errorOf(out[1]), 'transform timed out after 50 ms');
    assert.deepEqual(out[2], { extras: { value: 'Chair', route: { key: 'k3' } } });
    // the isolate is still usable
    assert.deepEqual(f.applyInputsSync([input(rows[2]!)]), [{ extras: { value: 'Chair', route: { key: 'k3' } } }]);
  });

  test('a slow message is caught by the per-message measure', () => {
    const f = fns({ filter: 'function filter(a, r) { if (r.id === 2) { const end = Date.now() + 30; while (Date.now() < end) {} } return true }' }, { perMessageMs: 10, batchTimeoutCapMs: 5000 });
    const out = f.applyInputsSync(rows.map((r) => input(r)));
    assert.deepEqual(out[0], { extras: {} });
    assert.match(errorOf(out[1]), /^filter timed out after 10 ms/);
    assert.deepEqual(out[2], { extras: {} });
  });

  test('exhausting memory fails the message; the isolate is recreated', () => {
    const f = fns({ transform: 'function transform(a, r) { if (r.id === 2) { const a: string[][] = []; for (;;) a.push(new Array(100000).fill("x")); } return r.name }' }, { memoryLimitMb: 16, perMessageMs: 5000 });
    const out = f.applyInputsSync(rows.map((r) => input(r)));
    assert.deepEqual(out[0], { extras: { value: 'Lamp' } });
    assert.equal(errorOf(out[1]), 'transform exhausted the sandbox memory (limit 16 MB)');
    assert.deepEqual(out[2], { extras: { value: 'Chair' } });
    assert.ok(f.restarts >= 1);
    assert.deepEqual(f.applyInputsSync([input(rows[0]!)]), [{ extras: { value: 'Lamp' } }]);
  });

  test('nothing of Node is reachable', () => {
    const probes: Record<string, string> = {
      process: 'process.exit(1)',
      require: "require('fs').readFileSync('/etc/passwd')",
      ctor: "globalThis.constructor.constructor('return process')().exit(1)",
      function: "Function('return process')().exit(1)",
      fetch: "fetch('http://127.0.0.1:1/')",
      setTimeout: 'setTimeout(() => 1, 1)',
      Buffer: "Buffer.from('x')",
      globals: 'Object.getOwnPropertyNames(globalThis).filter((k) => !BUILTINS.includes(k)).join(",") || "none"',
    };
    const builtins = JSON.stringify(['Object', 'Function', 'Array', 'Number', 'parseFloat', 'parseInt', 'Infinity', 'NaN', 'undefined', 'Boolean', 'String', 'Symbol', 'Date', 'Promise', 'RegExp', 'Error', 'AggregateError', 'EvalError', 'RangeError', 'ReferenceError', 'SyntaxError', 'TypeError', 'URIError', 'globalThis', 'JSON', 'Math', 'Intl', 'ArrayBuffer', 'Uint8Array', 'Int8Array', 'Uint16Array', 'Int16Array', 'Uint32Array', 'Int32Array', 'Float32Array', 'Float64Array', 'Uint8ClampedArray', 'BigUint64Array', 'BigInt64Array', 'DataView', 'Map', 'BigInt', 'Set', 'WeakMap', 'WeakSet', 'Proxy', 'Reflect', 'FinalizationRegistry', 'WeakRef', 'decodeURI', 'decodeURIComponent', 'encodeURI', 'encodeURIComponent', 'escape', 'unescape', 'eval', 'isFinite', 'isNaN', 'console', 'transform']);
    const f = fns({ transform: `const BUILTINS = ${builtins};\nfunction transform(a, r) { switch (r.probe) {\n${Object.entries(probes).map(([k, v]) => `case ${JSON.stringify(k)}: return ${v};`).join('\n')}\n} }` });
    const out = f.applyInputsSync(Object.keys(probes).map((probe) => input({ probe })));
    const byProbe = Object.fromEntries(Object.keys(probes).map((k, i) => [k, out[i]]));
    assert.equal(errorOf(byProbe.process), 'transform threw: ReferenceError: process is not defined');
    assert.equal(errorOf(byProbe.require), 'transform threw: Error: module loading is not allowed (import or require of "fs")');
    assert.equal(errorOf(byProbe.ctor), 'transform threw: ReferenceError: process is not defined');
    assert.equal(errorOf(byProbe.function), 'transform threw: ReferenceError: process is not defined');
    assert.equal(errorOf(byProbe.fetch), 'transform threw: ReferenceError: fetch is not defined');
    assert.equal(errorOf(byProbe.setTimeout), 'transform threw: ReferenceError: setTimeout is not defined');
    assert.equal(errorOf(byProbe.Buffer), 'transform threw: ReferenceError: Buffer is not defined');
    assert.deepEqual(byProbe.globals, { extras: { value: 'none' } }, 'only the JS language built-ins (no Atomics, SharedArrayBuffer, WebAssembly)');
    // the host process is untouched
    assert.equal(process.exitCode, undefined);
  });

  test('a module cannot be loaded at run time either', () => {
    const f = fns({
      transform: 'function transform(a, r) { return r.id === 1 ? import("fs") : eval("import(\'fs\')") }',
      route: "function route(a, r) { return { key: String(typeof require) + ':' + String(typeof module) + ':' + String(typeof exports) } }",
    });
    const out = f.applyInputsSync([input({ id: 1 }), input({ id: 2 })]);
    assert.equal(errorOf(out[0]), 'transform returned an unusable value: a Promise (functions must be synchronous)');
    assert.equal(errorOf(out[1]), 'transform returned an unusable value: a Promise (functions must be synchronous)');
    const r = fns({ route: "function route(a, r) { return { key: typeof require + ':' + typeof globalThis.__sluice } }" }).applyInputsSync([input({})]);
    // `require` is the refusing stub of the CommonJS wrapper; the runtime's API is gone
    assert.deepEqual(r, [{ extras: { route: { key: 'function:undefined' } } }]);
    const left = fns({ transform: "function transform(a, r) { if (r.id === 2) import('fs'); return 'ok' }" }).applyInputsSync([input({ id: 1 }), input({ id: 2 })]);
    assert.deepEqual(left[0], { extras: { value: 'ok' } });
    assert.equal(errorOf(left[1]), 'transform failed: Not supported');
  });

  test('tampering with built-ins affects only the functions themselves', () => {
    const f = fns({ transform: 'JSON.stringify = () => "hacked"; JSON.parse = () => [];\nfunction transform(a, r) { return { n: r.name } }' });
    assert.deepEqual(f.applyInputsSync([input(rows[0]!)]), [{ extras: { value: '{"n":"Lamp"}' } }]);
    const g = fns({ transform: 'function transform(a, r) { (Array.prototype as any).toJSON = () => "x"; return r.name }' });
    const out = g.applyInputsSync([input(rows[0]!), input(rows[1]!)]);
    assert.ok(out.every((o) => 'error' in o), JSON.stringify(out));
  });

  test('large batches are split into several calls; each message keeps its own result', () => {
    const f = fns({ filter: 'record.id % 3 !== 0', transform: 'function transform(a, r) { return r.id }' }, { maxBatchMessages: 7, maxBatchBytes: 200 });
    const inputs = Array.from({ length: 100 }, (_, id) => input({ id, pad: 'x'.repeat(id) }));
    const out = f.applyInputsSync(inputs);
    out.forEach((o, id) => assert.deepEqual(o, id % 3 === 0 ? { skip: true } : { extras: { value: String(id) } }));
  });
});

describe('applySync over changes, then the string sink', () => {
  test('record, changes and metadata as the envelope has them; extras reach the plan', () => {
    const table = buildTableInfo(
      {
        relationOid: 1,
        schema: 'public',
        name: 'products',
        replicaIdentity: 'f',
        columns: [
          { name: 'id', typeOid: 20, isKey: true },
          { name: 'name', typeOid: 25, isKey: false },
          { name: 'price', typeOid: 1700, isKey: false },
        ],
      },
      () => undefined,
    );
    const meta: MessageMeta = { commitLsn: 0x16b3748n, commitTimeMicros: 0n, sinkName: 'products' };
    const changes: Change[] = [
      { action: 'update', table, row: ['1', 'Lamp', '9.50'], oldRow: ['1', 'Lamp', '8.00'], oldKind: 'O', idx: 0 },
      { action: 'insert', table, row: ['2', 'Desk', '120'], oldRow: null, oldKind: null, idx: 1 },
      { action: 'insert', table, row: ['3', undefined as unknown as string, '1'], oldRow: null, oldKind: null, idx: 2 },
    ];
    const f = fns({
      filter: 'record.id !== 2',
      transform: 'function transform(action, record, changes, metadata) { return { action, record, changes, metadata } }',
      route: 'function route(action, record, changes, metadata) { return { key: `p:${record.id}`, expire_ms: 1000 } }',
    });
    const results = f.applySync(changes, meta);
    assert.deepEqual(results[1], { skip: true });
    assert.equal(errorOf(results[2]), 'column "name" is an unchanged TOASTed value that Postgres did not send');
    const extras = extrasOf(results[0]);
    assert.deepEqual(JSON.parse(extras.value!), {
      action: 'update',
      record: { id: 1, name: 'Lamp', price: 9.5 },
      changes: { price: 8 },
      metadata: {
        table_schema: 'public',
        table_name: 'products',
        commit_timestamp: '2000-01-01T00:00:00.000000Z',
        commit_lsn: '0/16B3748',
        commit_idx: 0,
        idempotency_key: '0/16B3748:0',
        sink: { name: 'products' },
      },
    });
    const sink = createStringSink({ name: 'products', key: 'sluice:{table}:{pk}', value: 'record', maxValueBytes: 1 << 20 });
    const commands: RedisCommand[] = [];
    const out: PlanOutput = { command: (c) => commands.push(c), fail: () => assert.fail('no failure expected') };
    sink.plan(changes[0]!, meta, out, extras);
    assert.deepEqual(commands, [['SET', 'p:1', extras.value!, 'PX', '1000']]);
  });
});

test('overhead: applySync over a batch of 1000 messages', () => {
  const f = fns({
    filter: "record.status === 'active'",
    transform: 'function transform(a, r) { return { name: r.name, price: r.price } }',
    route: 'function route(a, r) { return { key: "product:" + r.id } }',
  });
  const inputs = Array.from({ length: 1000 }, (_, id) => input({ id, name: `product ${id}`, price: id * 1.5, status: id % 10 === 0 ? 'inactive' : 'active', description: 'x'.repeat(200) }));
  f.applyInputsSync(inputs); // warm-up
  const runs = 20;
  const started = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) f.applyInputsSync(inputs);
  const perMessageUs = Number(process.hrtime.bigint() - started) / 1000 / runs / inputs.length;
  // informational; generous bound so that slow CI machines do not fail
  process.stdout.write(`# functions overhead: ${perMessageUs.toFixed(2)} µs per message (filter+transform+route, batch of 1000)\n`);
  assert.ok(perMessageUs < 200, `${perMessageUs} µs per message`);
});

// Each way out of the sandbox a function might try: stopped, reported as that message's failure
// with the reason, and the other messages (and the next batch) go on.
describe('the sandbox stops escapes, each reported as a failed message', () => {
  /** runs `body` (the transform's body) for message 2 of three; 1 and 3 must pass as usual */
  const attempt = (body: string, opts?: SandboxOptions): { failure: FunctionOutcome; f: SinkFunctions } => {
    const f = fns({ transform: `function transform(a, r) { if (r.id === 2) { ${body} } return "ok" + r.id }` }, opts);
    const out = f.applyInputsSync([input({ id: 1 }), input({ id: 2 }), input({ id: 3 })]);
    assert.deepEqual(out[0], { extras: { value: 'ok1' } });
    assert.deepEqual(out[2], { extras: { value: 'ok3' } });
    // the next batch runs in the same (or a new) isolate as if nothing happened
    assert.deepEqual(f.applyInputsSync([input({ id: 4 })]), [{ extras: { value: 'ok4' } }]);
    return { failure: out[1]!, f };
  };

  test('reading process', () => {
    assert.equal(errorOf(attempt('return process.pid').failure), 'transform threw: ReferenceError: process is not defined');
    assert.equal(errorOf(attempt('return globalThis.process.pid').failure), "transform threw: TypeError: Cannot read properties of undefined (reading 'pid')");
    assert.equal(errorOf(attempt('return Function("return this")().process.exit(1)').failure), "transform threw: TypeError: Cannot read properties of undefined (reading 'exit')");
    assert.equal(process.exitCode, undefined);
  });

  test('reading the environment', () => {
    assert.equal(errorOf(attempt('return process.env.HOME').failure), 'transform threw: ReferenceError: process is not defined');
    assert.equal(errorOf(attempt('return Deno.env.get("HOME")').failure), 'transform threw: ReferenceError: Deno is not defined');
    // nothing of the environment is anywhere in the isolate's globals
    const f = fns({ transform: 'function transform() { return JSON.stringify(Object.getOwnPropertyNames(globalThis).map((k) => { try { return String(globalThis[k]) } catch (e) { return "" } })) }' });
    const globals = extrasOf(f.applyInputsSync([input({})])[0]).value!;
    for (const v of [process.env.PATH, process.env.HOME, process.cwd()].filter((x): x is string => x !== undefined && x.length > 3)) assert.ok(!globals.includes(v), `the isolate sees ${v}`);
  });

  test('the filesystem', () => {
    assert.equal(errorOf(attempt('return require("fs").readFileSync("/etc/passwd", "utf8")').failure), 'transform threw: Error: module loading is not allowed (import or require of "fs")');
    assert.equal(errorOf(attempt('return import("node:fs")').failure), 'transform returned an unusable value: a Promise (functions must be synchronous)');
    assert.equal(errorOf(attempt('return process.binding("fs")').failure), 'transform threw: ReferenceError: process is not defined');
    // `module` is the CommonJS wrapper's plain object, not Node's
    assert.equal(errorOf(attempt('return module.constructor._load("fs")').failure), 'transform threw: TypeError: module.constructor._load is not a function');
  });

  test('opening a socket', () => {
    assert.equal(errorOf(attempt('return fetch("http://127.0.0.1:1/")').failure), 'transform threw: ReferenceError: fetch is not defined');
    assert.equal(errorOf(attempt('return new WebSocket("ws://127.0.0.1:1/")').failure), 'transform threw: ReferenceError: WebSocket is not defined');
    assert.equal(errorOf(attempt('return new XMLHttpRequest()').failure), 'transform threw: ReferenceError: XMLHttpRequest is not defined');
    assert.equal(errorOf(attempt('return require("net").connect(1)').failure), 'transform threw: Error: module loading is not allowed (import or require of "net")');
  });

  test('timers, and a promise chain that never ends', () => {
    assert.equal(errorOf(attempt('setTimeout(() => 1, 0); return 1').failure), 'transform threw: ReferenceError: setTimeout is not defined');
    assert.equal(errorOf(attempt('setInterval(() => 1, 1); return 1').failure), 'transform threw: ReferenceError: setInterval is not defined');
    assert.equal(errorOf(attempt('setImmediate(() => 1); return 1').failure), 'transform threw: ReferenceError: setImmediate is not defined');
    assert.equal(errorOf(attempt('queueMicrotask(() => 1); return 1').failure), 'transform threw: ReferenceError: queueMicrotask is not defined');
    // promise callbacks run when the call returns, inside its time limit: an endless chain times out
    const { failure } = attempt('Promise.resolve().then(function again() { return Promise.resolve().then(again) }); return 1');
    assert.equal(errorOf(failure), 'transform timed out after 50 ms');
  });

  test('an infinite loop, also in a getter of what it throws', () => {
    assert.equal(errorOf(attempt('while (true) {}').failure), 'transform timed out after 50 ms');
    assert.equal(errorOf(attempt('const e = {}; Object.defineProperty(e, "message", { get() { for (;;) {} } }); throw e').failure), 'transform timed out after 50 ms');
    assert.equal(errorOf(attempt('return new Proxy({}, { ownKeys() { for (;;) {} } })').failure), 'transform timed out after 50 ms');
  });

  test('deep recursion', () => {
    assert.equal(errorOf(attempt('const f = (n) => f(n + 1) + 1; return f(0)').failure), 'transform threw: RangeError: Maximum call stack size exceeded');
    // a stack overflow while building what it returns
    assert.match(errorOf(attempt('let o = {}; for (let i = 0; i < 2e5; i++) o = { o }; return o', { perMessageMs: 2000 }).failure), /^transform returned an unusable value: cannot be serialized as JSON: RangeError: Maximum call stack size exceeded/);
  });

  test('allocating without end', () => {
    const opts = { memoryLimitMb: 16, perMessageMs: 5000 };
    const grow = attempt('const a = []; for (;;) a.push(new Array(100000).fill(r.id));', opts);
    assert.equal(errorOf(grow.failure), 'transform exhausted the sandbox memory (limit 16 MB)');
    assert.ok(grow.f.restarts >= 1, 'a new isolate');
    assert.equal(errorOf(attempt('let s = "x"; for (;;) s += s;', opts).failure), 'transform threw: RangeError: Invalid string length');
  });

  test('prototype tricks on the objects it receives', () => {
    // the objects were made inside the isolate: their constructors are the isolate's
    assert.equal(errorOf(attempt('return r.constructor.constructor("return process")().mainModule').failure), 'transform threw: ReferenceError: process is not defined');
    assert.equal(errorOf(attempt('return a.constructor.constructor("return process")()').failure), 'transform threw: ReferenceError: process is not defined');
    assert.equal(errorOf(attempt('return r.toString.constructor("return require")()("fs")').failure), 'transform threw: ReferenceError: require is not defined');
    assert.equal(errorOf(attempt('return Object.getPrototypeOf(r).constructor.constructor("return this")().process.pid').failure), "transform threw: TypeError: Cannot read properties of undefined (reading 'pid')");
    // pollution of the prototypes it can reach stays in its isolate: Sluice's objects are untouched
    const polluter = fns({ transform: 'function transform(a, r) { r.__proto__.polluted = "yes"; Object.prototype.toJSON = undefined; Array.prototype.isAdmin = true; Object.getPrototypeOf(JSON).evil = 1; return "done" }' });
    assert.deepEqual(polluter.applyInputsSync([input({ id: 1 })]), [{ extras: { value: 'done' } }]);
    const host = {} as Record<string, unknown>;
    assert.equal(host.polluted, undefined);
    assert.equal(([] as unknown as Record<string, unknown>).isAdmin, undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, 'toJSON'), false);
    // nor another sink's isolate
    const other = fns({ transform: 'function transform(a, r) { return String(({}).polluted) + ":" + String([].isAdmin) }' });
    assert.deepEqual(other.applyInputsSync([input({ id: 1 })]), [{ extras: { value: 'undefined:undefined' } }]);
  });

  test('"__proto__" in a row, and in what a function returns, is data', () => {
    // a column or JSON key named __proto__ reaches every function as an own key (copies included)
    const f = fns({
      filter: 'function filter(a, r) { return Object.keys(r).includes("__proto__") && Object.getPrototypeOf(r) === Object.prototype }',
      transform: 'function transform(a, r) { return { keys: Object.keys(r), admin: ({}).admin === undefined ? "no" : "yes" } }',
      route: 'function route(a, r) { return { key: "k:" + Object.keys(r).join(",") + ":" + String(r.__proto__.admin) } }',
    });
    const row = { action: 'insert' as const, recordJson: '{"id":1,"__proto__":{"admin":true}}', changesJson: 'null', metadataJson: '{}' };
    assert.deepEqual(f.applyInputsSync([row]), [{ extras: { value: '{"keys":["id","__proto__"],"admin":"no"}', route: { key: 'k:id,__proto__:true' } } }]);
    // a route object whose own "__proto__" key is not one of the fields is refused, not merged
    const r = fns({ route: 'function route() { return JSON.parse(\'{"__proto__": {"key": "x"}}\') }' });
    assert.equal(errorOf(r.applyInputsSync([input({})])[0]), 'route returned an unusable value: unknown field "__proto__" (this sink takes key, action, expire_ms)');
    assert.equal(({} as Record<string, unknown>).key, undefined);
  });
});
