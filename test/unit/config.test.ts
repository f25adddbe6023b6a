import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, configPathFrom, loadConfig, parseConfig } from '../../src/config/load.js';
import type { ConfigProblem } from '../../src/config/load.js';
import { at, entry } from '../support/at.js';
import { closestKey, SINK_TYPES } from '../../src/config/schema.js';
import type {
  HashSinkConfig,
  ListSinkConfig,
  PubsubSinkConfig,
  SinkAction,
  SinkConfig,
  SluiceConfig,
  StreamSinkConfig,
  StringSinkConfig,
  ZsetSinkConfig,
} from '../../src/config/schema.js';

const FULL_EXAMPLE = `source:
  url: postgres://postgres@127.0.0.1:5432/app   # libpq-style URL; sslmode honoured
  slot: sluice               # default "sluice"; created if missing
  publication: sluice        # default "sluice"; created/extended for the sinks' tables if missing
redis:                        # named connections
  cache:
    url: redis://user:pass@127.0.0.1:6379/0     # rediss:// = TLS (certificates verified by default)
  secure:
    url: rediss://cache.internal:6380
    tls: { ca: ./ca.pem }         # also cert, key (mTLS), servername; insecure: true only on purpose
  cluster1:
    cluster: [redis://127.0.0.1:7000, redis://127.0.0.1:7001]
  ha:
    sentinel: { name: mymaster, nodes: [redis://127.0.0.1:26379] }
sinks:
  - name: products-cache
    type: string                  # string | hash | list | set | zset | stream | pubsub
    redis: cache                  # default: the only connection, if there is one
    tables: [public.products]     # "schema.table", "table" (= public.table) or "schema.*"
    actions: [insert, update, delete]   # default: all three (list: [insert])
    key: "sluice:{table}:{pk}"    # default for string/hash
    expire_ms: 3600000            # optional TTL, refreshed on every write
    backfill: true                # initial backfill when the sink is first created
http:
  port: 7376                      # API, console, /metrics; 0 = off
  token: \${SLUICE_TOKEN}          # bearer token for the API and console login
`;

/** A small valid config; `sinks` is the YAML of the sinks list (indented by 2). */
function minimal(sinks: string, extra = ''): string {
  return `source:
  url: postgres://app@localhost/app
redis:
  main:
    url: redis://localhost:6379
sinks:
${sinks}${extra}`;
}

const parse = (text: string, env: NodeJS.ProcessEnv = {}): SluiceConfig => parseConfig(text, { file: 'sluice.yaml', env });

function problemsOf(text: string, env: NodeJS.ProcessEnv = {}): ConfigProblem[] {
  try {
    parse(text, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return [...err.problems];
  }
  assert.fail('expected a ConfigError');
}

/** The one problem of `text`; fails if there is not exactly one. */
function onlyProblem(text: string, env: NodeJS.ProcessEnv = {}): ConfigProblem {
  const problems = problemsOf(text, env);
  assert.equal(problems.length, 1, `expected one problem, got:\n${problems.map((p) => `${p.line} ${p.path}: ${p.message}`).join('\n')}`);
  return at(problems, 0);
}

/** 1-based line of the first line of `text` containing `needle` (after `after`, if given). */
function lineOf(text: string, needle: string, after = 0): number {
  const lines = text.split('\n');
  for (let i = after; i < lines.length; i++) if (lines[i]!.includes(needle)) return i + 1; // i < lines.length
  throw new Error(`${needle} not in text`);
}

function expectProblem(text: string, path: string, line: number, message: RegExp | string, env: NodeJS.ProcessEnv = {}): ConfigProblem {
  const p = onlyProblem(text, env);
  assert.equal(p.path, path);
  assert.equal(p.line, line, `line of ${path}`);
  if (typeof message === 'string') assert.equal(p.message, message);
  else assert.match(p.message, message);
  return p;
}

// ---------------------------------------------------------------------------------------------
// valid configurations

test('the full example from the spec parses', () => {
  const cfg = parse(FULL_EXAMPLE, { SLUICE_TOKEN: 's3cret' });
  assert.deepEqual(cfg.source, { url: 'postgres://postgres@127.0.0.1:5432/app', slot: 'sluice', publication: 'sluice', retained_wal_warn_bytes: 1024 ** 3, failover_slot: false });
  assert.deepEqual(cfg.redis.cache, { kind: 'url', url: 'redis://user:pass@127.0.0.1:6379/0', tls: undefined });
  const secure = entry(cfg.redis, 'secure');
  assert.equal(secure.kind, 'url');
  assert.deepEqual(secure.tls, { ca: resolve('ca.pem'), insecure: false });
  assert.deepEqual(cfg.redis.cluster1, {
    kind: 'cluster',
    cluster: ['redis://127.0.0.1:7000', 'redis://127.0.0.1:7001'],
    username: undefined,
    password: undefined,
    tls: undefined,
  });
  const ha = entry(cfg.redis, 'ha');
  assert.equal(ha.kind, 'sentinel');
  if (ha.kind === 'sentinel') assert.deepEqual(ha.sentinel, { name: 'mymaster', nodes: ['redis://127.0.0.1:26379'] });
  assert.equal(cfg.sinks.length, 1);
  assert.deepEqual(cfg.sinks[0], {
    name: 'products-cache',
    type: 'string',
    redis: 'cache',
    tables: ['public.products'],
    actions: ['insert', 'update', 'delete'],
    key: 'sluice:{table}:{pk}',
    value: 'record',
    expire_ms: 3600000,
    backfill: true,
    max_value_bytes: 16 * 1024 * 1024,
    max_transaction_rows: 20000,
    on_schema_change: 'backfill',
  });
  assert.deepEqual(cfg.http, { port: 7376, host: '127.0.0.1', token: 's3cret', body_limit_bytes: 1048576 });
  assert.deepEqual(cfg.log, { level: 'info', values: false });
  assert.deepEqual(cfg.apply, { batch_max_commands: 2000, failed_max_messages: 10_000, failed_max_bytes: 64 * 1024 * 1024, failed_envelope_max_bytes: 1024 * 1024 });
  assert.deepEqual(cfg.state, { url: 'postgres://postgres@127.0.0.1:5432/app', schema: 'sluice' });
});

test('defaults are filled in for every sink type', () => {
  const cfg = parse(
    minimal(`  - { name: s, type: string, tables: [products] }
  - { name: h, type: hash, tables: [public.products] }
  - { name: hf, type: hash, tables: [products], mode: field, field: "{id}" }
  - { name: l, type: list, tables: ["audit.*"], key: "log:{table}" }
  - { name: st, type: set, tables: [products], key: "skus", member: "{sku}" }
  - { name: z, type: zset, tables: [products], key: "by-price", member: "{pk}", score: price }
  - { name: x, type: stream, tables: [products] }
  - { name: p, type: pubsub, tables: [products] }
`),
  );
  assert.deepEqual(cfg.source, { url: 'postgres://app@localhost/app', slot: 'sluice', publication: 'sluice', retained_wal_warn_bytes: 1024 ** 3, failover_slot: false });
  assert.deepEqual(cfg.http, { port: 7376, host: '127.0.0.1', body_limit_bytes: 1048576 });
  assert.deepEqual(cfg.log, { level: 'info', values: false });
  assert.deepEqual(cfg.apply, { batch_max_commands: 2000, failed_max_messages: 10_000, failed_max_bytes: 64 * 1024 * 1024, failed_envelope_max_bytes: 1024 * 1024 });
  assert.deepEqual(cfg.state, { url: 'postgres://app@localhost/app', schema: 'sluice' });

  const byName = new Map(cfg.sinks.map((s) => [s.name, s]));
  for (const s of cfg.sinks) {
    assert.equal(s.redis, 'main', 'the only connection is the default');
    assert.equal(s.backfill, false);
    assert.equal(s.max_value_bytes, 16 * 1024 * 1024);
    assert.equal(s.max_transaction_rows, 20000);
    assert.equal(s.expire_ms, undefined);
    assert.deepEqual(s.actions, s.type === 'list' ? ['insert'] : ['insert', 'update', 'delete']);
  }
  const s = byName.get('s') as StringSinkConfig;
  assert.equal(s.key, 'sluice:{table}:{pk}');
  assert.equal(s.value, 'record');
  assert.deepEqual(s.tables, ['public.products']);
  const h = byName.get('h') as HashSinkConfig;
  assert.equal(h.key, 'sluice:{table}:{pk}');
  assert.equal(h.mode, 'row');
  assert.ok(!('field' in h) && !('value' in h));
  const hf = byName.get('hf') as HashSinkConfig;
  assert.equal(hf.mode, 'field');
  if (hf.mode === 'field') {
    assert.equal(hf.field, '{id}');
    assert.equal(hf.value, 'record');
  }
  const l = byName.get('l') as ListSinkConfig;
  assert.deepEqual([l.push, l.value, l.max_length, l.tables[0]], ['append', 'message', undefined, 'audit.*']);
  const z = byName.get('z') as ZsetSinkConfig;
  assert.deepEqual([z.key, z.member, z.score], ['by-price', '{pk}', 'price']);
  assert.equal((byName.get('x') as StreamSinkConfig).key, 'sluice:{schema}.{table}');
  const p = byName.get('p') as PubsubSinkConfig;
  assert.deepEqual([p.channel, p.value], ['sluice:{table}:{pk}', 'message']);
});

test('the output types carry the defaults (compile-time check)', () => {
  const cfg = parse(minimal('  - { name: s, type: string, tables: [t] }\n'));
  const slot: string = cfg.source.slot;
  const publication: string = cfg.source.publication;
  const sink: SinkConfig = at(cfg.sinks, 0);
  const actions: SinkAction[] = sink.actions;
  const redis: string = sink.redis;
  const port: number = cfg.http.port;
  if (sink.type === 'string') {
    const key: string = sink.key;
    assert.equal(key, 'sluice:{table}:{pk}');
  }
  assert.deepEqual([slot, publication, actions.length, redis, port], ['sluice', 'sluice', 3, 'main', 7376]);
});

test('actions are deduplicated and kept in insert, update, delete order', () => {
  const cfg = parse(minimal('  - { name: s, type: string, tables: [t], actions: [delete, insert, delete] }\n'));
  assert.deepEqual(at(cfg.sinks, 0).actions, ['insert', 'delete']);
});

test('redis connections: cluster and sentinel options, TLS paths relative to the config file', () => {
  const cfg = parseConfig(
    `source: { url: "postgresql://u:p@db:5432/app?sslmode=verify-full" }
redis:
  c: { cluster: ["rediss://a:7000", "rediss://b:7000"], username: u, password: p, tls: { ca: ca.pem, cert: /abs/c.pem, key: k.pem, servername: a } }
  s: { sentinel: { name: m, nodes: [redis://s1:26379] }, db: 2, password: p }
sinks:
  - { name: a, type: string, redis: c, tables: [t] }
`,
    { file: '/etc/sluice/sluice.yaml', env: {} },
  );
  assert.deepEqual(cfg.redis.c, {
    kind: 'cluster',
    cluster: ['rediss://a:7000', 'rediss://b:7000'],
    username: 'u',
    password: 'p',
    tls: { ca: '/etc/sluice/ca.pem', cert: '/abs/c.pem', key: '/etc/sluice/k.pem', servername: 'a', insecure: false },
  });
  assert.deepEqual(cfg.redis.s, {
    kind: 'sentinel',
    sentinel: { name: 'm', nodes: ['redis://s1:26379'] },
    db: 2,
    username: undefined,
    password: 'p',
    tls: undefined,
  });
});

// ---------------------------------------------------------------------------------------------
// unknown keys

test('unknown key at the top level, with a suggestion', () => {
  const text = minimal('  - { name: s, type: string, tables: [t] }\n', 'htp:\n  port: 1\n');
  expectProblem(text, 'htp', lineOf(text, 'htp:'), 'unknown key "htp"; did you mean "http"?');
});

test('unknown key without an obvious suggestion lists the known keys', () => {
  const text = minimal('  - { name: s, type: string, tables: [t] }\n', 'metrics: true\n');
  expectProblem(text, 'metrics', lineOf(text, 'metrics:'), 'unknown key "metrics" (known keys: source, redis, sinks, http, log, apply, state, instance)');
});

test('instance: optional, a name without ":" that keys can carry', () => {
  const ok = parse(minimal('  - { name: s, type: string, tables: [t] }\n', 'instance: orders-eu@1\n'));
  assert.equal(ok.instance, 'orders-eu@1');
  assert.equal(parse(minimal('  - { name: s, type: string, tables: [t] }\n')).instance, undefined);
  const text = minimal('  - { name: s, type: string, tables: [t] }\n', 'instance: "a:b"\n');
  expectProblem(text, 'instance', lineOf(text, 'instance:'), /^must be 1 to 100 letters, digits, _ \. @ or - \(no ":"/);
});

test('unknown key in a sink, with a suggestion', () => {
  const text = minimal(`  - name: s
    type: string
    tables: [t]
    expir_ms: 1000
`);
  const p = expectProblem(text, 'sinks[0].expir_ms', lineOf(text, 'expir_ms'), 'unknown key "expir_ms"; did you mean "expire_ms"?');
  assert.equal(p.column, 5);
});

test('an option of another sink type is named as such', () => {
  const text = minimal(`  - name: s
    type: string
    tables: [t]
    push: prepend
`);
  expectProblem(text, 'sinks[0].push', lineOf(text, 'push'), 'unknown key "push" (not an option of string sinks; it belongs to list sinks)');
  const two = minimal(`  - name: s
    type: string
    tables: [t]
    max_length: 5
`);
  expectProblem(two, 'sinks[0].max_length', lineOf(two, 'max_length'), 'unknown key "max_length" (not an option of string sinks; it belongs to list, stream sinks)');
});

test('unknown key in tls', () => {
  const text = `source: { url: "postgres://localhost/app" }
redis:
  main:
    url: rediss://localhost:6380
    tls:
      ca: ca.pem
      servname: redis.internal
sinks:
  - { name: s, type: string, tables: [t] }
`;
  expectProblem(text, 'redis.main.tls.servname', 7, 'unknown key "servname"; did you mean "servername"?');
});

test('unknown keys in source, http, log and apply', () => {
  const text = `source: { url: "postgres://localhost/app", slots: x }
redis: { main: { url: "redis://localhost" } }
sinks: [{ name: s, type: string, tables: [t] }]
http: { prot: 80 }
log: { colour: true }
apply: { batch_max_command: 2 }
`;
  const problems = problemsOf(text);
  assert.deepEqual(
    problems.map((p) => [p.path, p.line, p.message]),
    [
      ['source.slots', 1, 'unknown key "slots"; did you mean "slot"?'],
      ['http.prot', 4, 'unknown key "prot"; did you mean "port"?'],
      ['log.colour', 5, 'unknown key "colour" (known keys: level, values)'],
      ['apply.batch_max_command', 6, 'unknown key "batch_max_command"; did you mean "batch_max_commands"?'],
    ],
  );
});

// ---------------------------------------------------------------------------------------------
// state

test('state: url defaults to source.url, schema to "sluice"; both can be set', () => {
  assert.deepEqual(parse(minimal('  - { name: s, type: string, tables: [t] }\n', 'state: {}\n')).state, {
    url: 'postgres://app@localhost/app',
    schema: 'sluice',
  });
  assert.deepEqual(parse(minimal('  - { name: s, type: string, tables: [t] }\n', 'state: { schema: sluice_eu }\n')).state, {
    url: 'postgres://app@localhost/app',
    schema: 'sluice_eu',
  });
  const cfg = parse(
    minimal('  - { name: s, type: string, tables: [t] }\n', 'state:\n  url: postgres://sluice:${PW}@meta.internal/sluice?sslmode=verify-full\n  schema: _sluice2\n'),
    { PW: 'pw' },
  );
  assert.deepEqual(cfg.state, { url: 'postgres://sluice:pw@meta.internal/sluice?sslmode=verify-full', schema: '_sluice2' });
  // the type says both are always there
  const url: string = cfg.state.url;
  const schema: string = cfg.state.schema;
  assert.ok(url && schema);
});

test('state: bad schema names, bad URLs and unknown keys are reported with their path', () => {
  const text = minimal(
    '  - { name: s, type: string, tables: [t] }\n',
    'state:\n  url: mysql://db/app\n  schema: Sluice-State\n  shema: x\n',
  );
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.line, p.message]),
    [
      ['state.url', lineOf(text, 'url: mysql'), 'must be a postgres:// or postgresql:// URL (got "mysql://")'],
      ['state.schema', lineOf(text, 'schema: Sluice'), 'must be a lowercase schema name: letters, digits and _, not starting with a digit'],
      ['state.shema', lineOf(text, 'shema:'), 'unknown key "shema"; did you mean "schema"?'],
    ],
  );
  for (const bad of ['1sluice', '"sluice.state"', '""', `${'a'.repeat(64)}`, 'pg_sluice']) {
    const p = onlyProblem(minimal('  - { name: s, type: string, tables: [t] }\n', `state: { schema: ${bad} }\n`));
    assert.equal(p.path, 'state.schema', bad);
  }
  assert.equal(onlyProblem(minimal('  - { name: s, type: string, tables: [t] }\n', 'state: { url: "postgres://db/app?sslmode=sometimes" }\n')).path, 'state.url');
  assert.equal(onlyProblem(minimal('  - { name: s, type: string, tables: [t] }\n', 'state: true\n')).message, 'must be a mapping (got true)');
});

test('closestKey only suggests obvious matches', () => {
  assert.equal(closestKey('expir_ms', ['expire_ms', 'key']), 'expire_ms');
  assert.equal(closestKey('kye', ['key', 'value']), 'key');
  assert.equal(closestKey('Expire_MS', ['expire_ms']), 'expire_ms');
  assert.equal(closestKey('xy', ['db', 'ca']), undefined);
  assert.equal(closestKey('metrics', ['source', 'redis']), undefined);
});

// ---------------------------------------------------------------------------------------------
// wrong values

test('wrong type', () => {
  const text = minimal(`  - name: s
    type: string
    tables: [t]
    backfill: "yes"
`);
  expectProblem(text, 'sinks[0].backfill', lineOf(text, 'backfill'), 'must be true or false (got "yes")');
});

test('wrong type: a number where a list is expected, and a non-integer', () => {
  const text = minimal(`  - name: s
    type: string
    tables: products
    expire_ms: 1.5
`);
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.line, p.message]),
    [
      ['sinks[0].tables', lineOf(text, 'tables'), 'must be a list (got "products")'],
      ['sinks[0].expire_ms', lineOf(text, 'expire_ms'), 'must be an integer (got 1.5)'],
    ],
  );
});

test('missing required option', () => {
  const text = minimal(`  - name: s
    type: string
`);
  const p = expectProblem(text, 'sinks[0].tables', lineOf(text, 'name: s'), 'is required');
  assert.equal(p.column, 5);
});

test('missing required top-level section', () => {
  const text = 'source: { url: "postgres://localhost/app" }\nredis: { main: { url: "redis://localhost" } }\n';
  expectProblem(text, 'sinks', 1, 'is required');
});

test('type-specific required options: list key, zset score, hash field in field mode', () => {
  const text = minimal(`  - { name: l, type: list, tables: [t] }
  - { name: z, type: zset, tables: [t], key: k, member: "{pk}" }
  - { name: h, type: hash, tables: [t], mode: field }
`);
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.line, p.message]),
    [
      ['sinks[0].key', lineOf(text, 'name: l'), 'is required'],
      ['sinks[1].score', lineOf(text, 'name: z'), 'is required'],
      ['sinks[2].field', lineOf(text, 'name: h'), 'is required with mode: field (the hash field template, e.g. "{pk}")'],
    ],
  );
});

test('hash field and value are only valid in field mode', () => {
  const text = minimal(`  - name: h
    type: hash
    tables: [t]
    value: message
`);
  expectProblem(text, 'sinks[0].value', lineOf(text, 'value:'), /only valid in field mode: give `field`/);
});

test('bad enum value: sink type (the message format of the spec)', () => {
  const text = minimal(`  - name: s
    type: strng
    tables: [t]
`);
  const p = expectProblem(text, 'sinks[0].type', 8, `must be one of ${SINK_TYPES.join(', ')} (got "strng")`);
  assert.equal(p.column, 5);
  assert.throws(
    () => parse(text),
    (err: unknown) => err instanceof ConfigError && err.message === `sluice.yaml:8:5 sinks[0].type: must be one of ${SINK_TYPES.join(', ')} (got "strng")`,
  );
});

test('missing sink type', () => {
  const text = minimal('  - { name: s, tables: [t] }\n');
  expectProblem(text, 'sinks[0].type', lineOf(text, 'name: s'), `is required: one of ${SINK_TYPES.join(', ')}`);
});

test('bad enum values: actions, log level, hash mode, list push', () => {
  const text = minimal(
    `  - { name: s, type: string, tables: [t], actions: [insert, upsert] }
  - { name: h, type: hash, tables: [t], mode: columns }
  - { name: l, type: list, tables: [t], key: k, push: left }
`,
    'log: { level: verbose }\n',
  );
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.line, p.message]),
    [
      ['sinks[0].actions[1]', lineOf(text, 'upsert'), 'must be one of insert, update, delete (got "upsert")'],
      ['sinks[1].mode', lineOf(text, 'columns'), 'must be one of row, field (got "columns")'],
      ['sinks[2].push', lineOf(text, 'left'), 'must be one of append, prepend (got "left")'],
      ['log.level', lineOf(text, 'verbose'), 'must be one of trace, debug, info, warn, error (got "verbose")'],
    ],
  );
});

test('numbers out of range', () => {
  const text = minimal(
    '  - { name: s, type: string, tables: [t], expire_ms: 0, max_value_bytes: -1 }\n',
    'http: { port: 70000 }\napply: { batch_max_commands: 0 }\n',
  );
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.message]),
    [
      ['sinks[0].expire_ms', 'must be greater than 0 (got 0)'],
      ['sinks[0].max_value_bytes', 'must be greater than 0 (got -1)'],
      ['http.port', 'must be at most 65535 (got 70000)'],
      ['apply.batch_max_commands', 'must be greater than 0 (got 0)'],
    ],
  );
});

test('bad templates', () => {
  const text = minimal(`  - name: a
    type: string
    tables: [t]
    key: "sluice:{table"
  - name: b
    type: pubsub
    tables: [t]
    channel: "x}"
  - name: c
    type: set
    tables: [t]
    key: k
    member: "{bad name}"
  - name: d
    type: string
    tables: [t]
    key: "a:{}"
`);
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.line, p.message]),
    [
      ['sinks[0].key', lineOf(text, 'sluice:{table'), 'unclosed "{" at position 8 (write "{{" for a literal brace)'],
      ['sinks[1].channel', lineOf(text, 'channel'), 'unmatched "}" at position 2 (write "}}" for a literal brace)'],
      ['sinks[2].member', lineOf(text, 'member'), '"{bad name}" is not a placeholder: use {schema}, {table}, {pk} or {column_name}'],
      ['sinks[3].key', lineOf(text, 'a:{}'), '"{}" is not a placeholder: use {schema}, {table}, {pk} or {column_name}'],
    ],
  );
});

test('templates accept {schema}, {table}, {pk} and column names, nothing else', () => {
  const ok = minimal('  - { name: s, type: string, tables: [t], key: "{schema}.{table}:{pk}:{user_id}:{x$}" }\n');
  assert.equal((parse(ok).sinks[0] as StringSinkConfig).key, '{schema}.{table}:{pk}:{user_id}:{x$}');
  // doubled braces are literal: Redis Cluster hash tags
  const tagged = minimal('  - { name: s, type: string, tables: [t], key: "user:{{{user_id}}}:{pk}" }\n');
  assert.equal((parse(tagged).sinks[0] as StringSinkConfig).key, 'user:{{{user_id}}}:{pk}');
  const text = minimal('  - { name: s, type: string, tables: [t], key: "user:{user-id}" }\n');
  expectProblem(text, 'sinks[0].key', 7, '"{user-id}" is not a placeholder: use {schema}, {table}, {pk} or {column_name}');
});

test('bad table names', () => {
  const text = minimal('  - { name: s, type: string, tables: ["a.b.c", "*", "1t", products, public.products] }\n');
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.message]),
    [
      ['sinks[0].tables[0]', 'must be "schema.table", "table" or "schema.*" (got "a.b.c")'],
      ['sinks[0].tables[1]', 'a bare "*" is not allowed: name the schema, e.g. "public.*"'],
      ['sinks[0].tables[2]', 'must be "schema.table", "table" or "schema.*" (got "1t")'],
      ['sinks[0].tables[4]', '"public.products" is listed twice'],
    ],
  );
  const dup = minimal('  - { name: s, type: string, tables: [products, public.products] }\n');
  expectProblem(dup, 'sinks[0].tables[1]', lineOf(dup, 'products'), '"public.products" is listed twice');
});

test('empty tables and actions lists', () => {
  const text = minimal('  - { name: s, type: string, tables: [], actions: [] }\n');
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.message]),
    [
      ['sinks[0].tables', 'must list at least one table'],
      ['sinks[0].actions', 'must list at least one of insert, update, delete'],
    ],
  );
});

test('bad sink name', () => {
  const text = minimal('  - { name: Products Cache, type: string, tables: [t] }\n');
  expectProblem(text, 'sinks[0].name', 7, 'must match [a-z0-9][a-z0-9_-]* (lowercase letters, digits, _ and -)');
});

test('duplicate sink names', () => {
  const text = minimal(`  - name: products
    type: string
    tables: [t]
  - name: products
    type: hash
    tables: [t]
`);
  expectProblem(text, 'sinks[1].name', lineOf(text, 'name: products', 8), 'duplicate sink name "products" (also used by sinks[0])');
});

// ---------------------------------------------------------------------------------------------
// redis connections and references

const TWO_CONNECTIONS = `source: { url: "postgres://localhost/app" }
redis:
  a: { url: "redis://localhost:6379" }
  b: { url: "redis://localhost:6380" }
sinks:
`;

test('a sink naming an unknown connection', () => {
  const text = `${TWO_CONNECTIONS}  - name: s
    type: string
    tables: [t]
    redis: c
`;
  expectProblem(text, 'sinks[0].redis', lineOf(text, 'redis: c'), 'unknown redis connection "c" (known: a, b)');
});

test('a sink without redis when there are several connections', () => {
  const text = `${TWO_CONNECTIONS}  - name: s
    type: string
    tables: [t]
  - { name: s2, type: string, tables: [t], redis: b }
`;
  expectProblem(text, 'sinks[0].redis', lineOf(text, 'name: s'), 'is required when there are several redis connections (one of a, b)');
  const cfg = parse(text.replace('    tables: [t]\n  -', '    tables: [t]\n    redis: a\n  -'));
  assert.deepEqual(cfg.sinks.map((s) => s.redis), ['a', 'b']);
});

test('a connection with both url and cluster, or neither', () => {
  const text = `source: { url: "postgres://localhost/app" }
redis:
  main:
    url: redis://localhost:6379
    cluster: [redis://localhost:7000]
  empty:
    tls: { insecure: true }
sinks:
  - { name: s, type: string, redis: main, tables: [t] }
`;
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.line, p.message]),
    [
      ['redis.main', 3, 'has url and cluster: use exactly one of url, cluster or sentinel'],
      ['redis.empty', 6, 'needs exactly one of url, cluster or sentinel'],
    ],
  );
});

test('no redis connections at all', () => {
  const text = 'source: { url: "postgres://localhost/app" }\nredis: {}\nsinks: [{ name: s, type: string, tables: [t] }]\n';
  expectProblem(text, 'redis', 2, 'must define at least one connection');
});

test('connection options that do not fit the kind of connection', () => {
  const text = `source: { url: "postgres://localhost/app" }
redis:
  main:
    url: redis://localhost:6379
    db: 1
    password: x
    tls: { ca: ca.pem }
sinks: [{ name: s, type: string, tables: [t] }]
`;
  assert.deepEqual(
    problemsOf(text).map((p) => [p.path, p.line, p.message]),
    [
      ['redis.main.db', 5, 'is only valid with sentinel (put the database in the URL: redis://host:6379/2)'],
      ['redis.main.password', 6, 'is only valid with cluster or sentinel (put credentials in the URL: redis://user:password@host)'],
      ['redis.main.tls', 7, 'TLS options need rediss:// URLs (this connection uses redis://)'],
    ],
  );
});

test('mutual TLS needs both cert and key', () => {
  const text = `source: { url: "postgres://localhost/app" }
redis:
  main:
    url: rediss://localhost:6380
    tls: { cert: c.pem }
sinks: [{ name: s, type: string, tables: [t] }]
`;
  expectProblem(text, 'redis.main.tls.key', 5, 'is required when cert is set (mutual TLS needs both)');
});

test('URL schemes are checked, and URLs are not echoed (they may hold passwords)', () => {
  const text = `source: { url: "mysql://root:hunter2@localhost/app" }
redis:
  main: { url: "http://user:hunter2@localhost:6379" }
  c: { cluster: ["redis://a:7000", "not a url"] }
sinks: [{ name: s, type: string, redis: main, tables: [t] }]
`;
  const problems = problemsOf(text);
  assert.deepEqual(
    problems.map((p) => [p.path, p.line, p.message]),
    [
      ['source.url', 1, 'must be a postgres:// or postgresql:// URL (got "mysql://")'],
      ['redis.main.url', 3, 'must be a redis:// or rediss:// URL (got "http://")'],
      ['redis.c.cluster[1]', 4, 'is not a valid URL (expected redis://[user:password@]host[:port][/db] or rediss://...)'],
    ],
  );
  assert.ok(!problems.some((p) => p.message.includes('hunter2')));
});

test('sslmode in the Postgres URL is checked', () => {
  const text = minimal('  - { name: s, type: string, tables: [t] }\n').replace('localhost/app', 'localhost/app?sslmode=strict');
  expectProblem(text, 'source.url', 2, /^sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, no-verify \(got "strict"\)$/);
});

// ---------------------------------------------------------------------------------------------
// environment variables

test('a missing environment variable is an error naming it, at its path and line', () => {
  const p = expectProblem(
    FULL_EXAMPLE,
    'http.token',
    lineOf(FULL_EXAMPLE, 'token:'),
    'environment variable SLUICE_TOKEN is not set (write ${SLUICE_TOKEN:-default} to give a default)',
  );
  assert.equal(p.column, 3);
});

test('environment defaults are used, and unquoted values are read as YAML values', () => {
  const text = minimal(
    '  - { name: s, type: string, tables: ["${TABLE:-products}"], backfill: ${BACKFILL:-false}, expire_ms: ${TTL} }\n',
    'http:\n  port: ${PORT:-8080}\n  token: "${TOKEN:-007}"\n',
  );
  const cfg = parse(text, { TTL: '60000', BACKFILL: 'true' });
  assert.equal(cfg.http.port, 8080);
  assert.equal(cfg.http.token, '007', 'quoted: stays a string');
  const sink = at(cfg.sinks, 0);
  assert.equal(sink.backfill, true);
  assert.equal(sink.expire_ms, 60000);
  assert.deepEqual(sink.tables, ['public.products']);
});

test('an environment value cannot change the structure of the file', () => {
  const text = minimal('  - { name: s, type: string, tables: [t] }\n', 'http:\n  token: ${TOKEN}\n');
  const cfg = parse(text, { TOKEN: 'a: b # not a comment\nlog: {level: trace}' });
  assert.equal(cfg.http.token, 'a: b # not a comment\nlog: {level: trace}');
  assert.equal(cfg.log.level, 'info');
});

test('a wrong value from the environment is reported without echoing it', () => {
  const text = minimal('  - { name: s, type: string, tables: [t] }\n', 'http:\n  port: ${PORT}\n  token: ${TOKEN}\n');
  const problems = problemsOf(text, { PORT: 'eighty', TOKEN: '12345' });
  assert.deepEqual(
    problems.map((p) => [p.path, p.message]),
    [
      ['http.port', 'must be a number (value from ${PORT})'],
      ['http.token', 'must be a string (value from ${TOKEN}; quote it to keep it a string: "${TOKEN}")'],
    ],
  );
});

test('comments and keys are not substituted', () => {
  const text = minimal('  - { name: s, type: string, tables: [t] }  # ${NOT_SET}\n');
  assert.equal(parse(text).sinks.length, 1);
});

// ---------------------------------------------------------------------------------------------
// YAML problems, several problems, the error message

test('a YAML syntax error becomes a ConfigError with its line', () => {
  const text = 'source:\n  url: "postgres://localhost/app\nredis: {}\n';
  const p = onlyProblem(text);
  assert.equal(p.path, '');
  assert.equal(typeof p.line, 'number');
  assert.match(p.message, /^YAML syntax error: /);

  const bad = 'sinks:\n  - name: a\n   type: b\n';
  const problems = problemsOf(bad);
  const first = at(problems, 0);
  assert.equal(first.line, 3);
  assert.match(first.message, /^YAML syntax error: /);
});

test('duplicate keys are a YAML error', () => {
  const text = 'source: { url: "postgres://localhost/app" }\nsource: {}\n';
  const p = onlyProblem(text);
  assert.equal(p.line, 2);
  assert.match(p.message, /unique/);
});

test('an empty file or a file that is not a mapping', () => {
  expectProblem('# nothing here\n', '', 1, 'the file is empty: expected a mapping with source, redis and sinks');
  expectProblem('- a\n- b\n', '', 1, 'must be a mapping (got a list)');
});

test('every problem is reported, sorted by line, one line each in the message', () => {
  const text = `source: { url: "postgres://localhost/app" }
redis: { main: { url: "redis://localhost" } }
sinks:
  - { name: a, type: strng, tables: [t] }
  - { name: a, type: list, tables: [t], key: k, max_lenght: 10 }
log: { level: loud }
`;
  let error: ConfigError | undefined;
  try {
    parse(text);
  } catch (err) {
    if (err instanceof ConfigError) error = err;
  }
  assert.ok(error);
  assert.equal(error.name, 'ConfigError');
  assert.equal(error.file, 'sluice.yaml');
  assert.deepEqual(error.message.split('\n'), [
    `sluice.yaml:4:16 sinks[0].type: must be one of ${SINK_TYPES.join(', ')} (got "strng")`,
    'sluice.yaml:5:7 sinks[1].name: duplicate sink name "a" (also used by sinks[0])',
    'sluice.yaml:5:49 sinks[1].max_lenght: unknown key "max_lenght"; did you mean "max_length"?',
    'sluice.yaml:6:8 log.level: must be one of trace, debug, info, warn, error (got "loud")',
  ]);
});

// ---------------------------------------------------------------------------------------------
// loadConfig and configPathFrom

test('loadConfig reads a file; a missing file is a ConfigError', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'));
  try {
    const path = join(dir, 'sluice.yaml');
    writeFileSync(path, FULL_EXAMPLE);
    const cfg = loadConfig(path, { SLUICE_TOKEN: 't' });
    assert.equal(cfg.http.token, 't');
    assert.equal(entry(cfg.redis, 'secure').tls?.ca, join(dir, 'ca.pem'));

    writeFileSync(path, FULL_EXAMPLE.replace('type: string ', 'type: strng  '));
    assert.throws(
      () => loadConfig(path, { SLUICE_TOKEN: 't' }),
      (err: unknown) => err instanceof ConfigError && err.message.startsWith(`${path}:17:5 sinks[0].type: must be one of`),
    );

    const missing = join(dir, 'nope.yaml');
    assert.throws(
      () => loadConfig(missing, {}),
      (err: unknown) =>
        err instanceof ConfigError && err.problems.length === 1 && err.message === `${missing}: cannot read the configuration file: file not found`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('configPathFrom: --config, else SLUICE_CONFIG, else ./sluice.yaml', () => {
  assert.equal(configPathFrom('/etc/a.yaml', { SLUICE_CONFIG: '/etc/b.yaml' }), '/etc/a.yaml');
  assert.equal(configPathFrom(undefined, { SLUICE_CONFIG: '/etc/b.yaml' }), '/etc/b.yaml');
  assert.equal(configPathFrom(undefined, {}), './sluice.yaml');
  assert.equal(configPathFrom(undefined, { SLUICE_CONFIG: '' }), './sluice.yaml');
});

test('environment references inside flow mappings', () => {
  const text = `source: { url: "postgres://localhost/app" }
redis:
  main: { url: "rediss://\${REDIS_HOST:-localhost}:6380", tls: { ca: \${CA_FILE}, servername: \${SNI} } }
sinks: [{ name: s, type: string, tables: [t] }]
`;
  const cfg = parseConfig(text, { file: '/srv/sluice.yaml', env: { CA_FILE: 'certs/ca.pem', SNI: 'cache' } });
  assert.deepEqual(cfg.redis.main, { kind: 'url', url: 'rediss://localhost:6380', tls: { ca: '/srv/certs/ca.pem', servername: 'cache', insecure: false } });
  expectProblem(text, 'redis.main.tls.servername', 3, /^environment variable SNI is not set/, { CA_FILE: 'x' });
});
