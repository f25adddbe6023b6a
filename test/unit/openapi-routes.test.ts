import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import { Metrics } from '../../src/metrics.js';
import { buildHttpApp } from '../../src/http/server.js';
import type { HttpDeps } from '../../src/http/deps.js';
import { OPENAPI_PATH, openApiDocument, toOpenApiPath } from '../../src/http/openapi.js';
import { createLogger } from '../../src/util/log.js';
import { checkSchema } from '../support/json-schema.js';

/**
 * A stand-in for the running instance's parts: registering the routes must not use them. Any
 * property is another stand-in, calling one returns one; none is a promise.
 */
function inert(): unknown {
  const target = function () {};
  const handler: ProxyHandler<typeof target> = {
    get: (_t, key) => (key === 'then' ? undefined : key === Symbol.toPrimitive ? () => 0 : key === Symbol.iterator ? [][Symbol.iterator] : proxy),
    apply: () => proxy,
  };
  const proxy: unknown = new Proxy(target, handler);
  return proxy;
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

describe('the OpenAPI document', () => {
  test('lists every route Fastify registers, and nothing else', async () => {
    const config = parseConfig(
      'source:\n  url: postgres://u@127.0.0.1:1/db\nredis:\n  main:\n    url: redis://127.0.0.1:1\nsinks:\n  - name: users\n    type: string\n    tables: [users]\nhttp:\n  token: t\n',
      { file: 'sluice.yaml', env: {} },
    );
    const deps = { config, metrics: new Metrics(), monitor: { last: null }, log: createLogger('error'), pipeline: inert(), backfills: inert(), control: inert(), fences: inert(), deliveries: inert() } as unknown as HttpDeps;
    const { app, routes } = await buildHttpApp(deps);
    try {
      // HEAD is answered for every GET by Fastify itself; OpenAPI documents the GET
      const registered = new Set(routes.filter((r) => r.method !== 'HEAD').map((r) => `${r.method} ${toOpenApiPath(r.url)}`));
      const doc = openApiDocument() as { paths: Record<string, Record<string, unknown>> };
      const documented = new Set(Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item).filter((k) => METHODS.includes(k)).map((m) => `${m.toUpperCase()} ${path}`)));
      const missing = [...registered].filter((r) => !documented.has(r)).sort();
      const extra = [...documented].filter((d) => !registered.has(d)).sort();
      assert.deepEqual(missing, [], `routes Fastify serves that src/http/openapi.ts does not document: add them there (and a call to test/integration/openapi.test.ts):\n  ${missing.join('\n  ')}`);
      assert.deepEqual(extra, [], `operations src/http/openapi.ts documents that no route serves:\n  ${extra.join('\n  ')}`);
      assert.ok(registered.has(`GET ${OPENAPI_PATH}`));
      // every GET also answers HEAD
      for (const r of routes.filter((x) => x.method === 'GET')) assert.ok(routes.some((x) => x.method === 'HEAD' && x.url === r.url), `HEAD ${r.url}`);
    } finally {
      await app.close();
    }
  });

  test('is OpenAPI 3.1: unique operation ids, every $ref resolves, path parameters declared, 401 where the token is needed', () => {
    const doc = openApiDocument() as {
      openapi: string;
      paths: Record<string, Record<string, { operationId: string; parameters?: { name: string; in: string; required?: boolean }[]; responses: Record<string, unknown>; security?: unknown[] }>>;
      components: { schemas: Record<string, unknown> };
    };
    assert.equal(doc.openapi, '3.1.0');
    const ids = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths)) {
      const inPath = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
      for (const [method, op] of Object.entries(item)) {
        assert.ok(!ids.has(op.operationId), `operationId ${op.operationId} twice`);
        ids.add(op.operationId);
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path');
        assert.deepEqual(declared.map((p) => p.name).sort(), [...inPath].sort(), `${method} ${path}: path parameters`);
        for (const p of declared) assert.equal(p.required, true, `${method} ${path}: ${p.name} required`);
        assert.equal('401' in op.responses, op.security === undefined, `${method} ${path}: a 401 exactly where the token is needed`);
      }
    }
    const text = JSON.stringify(doc);
    for (const m of text.matchAll(/"\$ref":"([^"]+)"/g)) {
      const name = /^#\/components\/schemas\/(.+)$/.exec(m[1]!)?.[1];
      assert.ok(name !== undefined && name in doc.components.schemas, `$ref ${m[1]!} does not resolve in the document`);
    }
  });

  test('the schema checker of the integration test finds what it should', () => {
    const root = { components: { schemas: { P: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^a' }, n: { type: ['integer', 'null'] } } } } } };
    const p = { $ref: '#/components/schemas/P' };
    assert.deepEqual(checkSchema(p, { id: 'ab', n: null }, root), []);
    assert.deepEqual(checkSchema(p, { n: 1.5 }, root), ['$: the required field "id" is missing', '$.n: 1.5 is not integer or null']);
    assert.deepEqual(checkSchema(p, { id: 'b' }, root), ['$.id: "b" does not match ^a']);
    assert.equal(checkSchema({ oneOf: [p, { type: 'null' }] }, 3, root).length, 1);
    assert.deepEqual(checkSchema({ type: 'object', properties: {}, additionalProperties: false }, { x: 1 }, root), ['$: "x" is not a documented field']);
    assert.deepEqual(checkSchema({ type: 'array', items: { enum: ['a'] } }, ['a', 'b'], root), ['$[1]: "b" is not one of ["a"]']);
    // the sink block, generated from the config schema, accepts a sink as the API answers it
    const doc = openApiDocument();
    assert.deepEqual(checkSchema({ $ref: '#/components/schemas/SinkBlock' }, { name: 'feed', type: 'list', redis: 'main', tables: ['public.orders'], actions: ['insert'], key: 'feed:{id}', push: 'append' }, doc), []);
    assert.equal(checkSchema({ $ref: '#/components/schemas/SinkBlock' }, { name: 'feed', type: 'list', tables: ['public.orders'], bogus: 1 }, doc).length, 1);
  });

  test('Fastify paths become OpenAPI paths', () => {
    assert.equal(toOpenApiPath('/api/sinks/:name/messages/:id/retry'), '/api/sinks/{name}/messages/{id}/retry');
    assert.equal(toOpenApiPath('/assets/*'), '/assets/{path}');
    assert.equal(toOpenApiPath('/health'), '/health');
  });
});
