import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { clientApp, type ClientApp } from '../support/client-package.js';
import { REPO_ROOT } from '../harness/process.js';

/**
 * `import { SluiceClient } from 'sluice/client'` as applications write it: from a plain .mjs
 * file run by node, and from TypeScript type-checked by tsc, in an application directory that
 * depends on this checkout (package.json "exports" › "./client", built by npm run build:client).
 */
describe('sluice/client as a package', () => {
  let pkg: ClientApp;

  before(() => {
    pkg = clientApp();
    writeFileSync(join(pkg.dir, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  });

  after(() => pkg?.remove());

  test('JavaScript: an .mjs file imports it and uses it (no Redis needed for these calls)', () => {
    writeFileSync(
      join(pkg.dir, 'use.mjs'),
      `import { SluiceClient, SluiceClientError, DEFAULT_WAIT_TIMEOUT_MS, renderKey } from 'sluice/client';
const client = new SluiceClient({ redis: 'redis://127.0.0.1:1', sinks: ['products'] });
const err = await client.waitFor('not an lsn').catch((e) => e);
const key = renderKey({ name: 'products', type: 'string', tables: ['products'], templates: { key: 'product:{id}' }, primary_keys: { 'public.products': ['id'] } }, { id: 7 });
await client.close();
await client.close();
console.log(JSON.stringify({ isError: err instanceof SluiceClientError, code: err.code, timeout: DEFAULT_WAIT_TIMEOUT_MS, key }));
`,
    );
    const r = spawnSync(process.execPath, ['use.mjs'], { cwd: pkg.dir, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim()), { isError: true, code: 'bad_lsn', timeout: 5000, key: 'product:7' });
  });

  test('JavaScript: only the exported entry points resolve', () => {
    writeFileSync(join(pkg.dir, 'deep.mjs'), `await import('sluice/src/client/index.ts').then(() => console.log('resolved'), (e) => console.log(e.code));\n`);
    const r = spawnSync(process.execPath, ['deep.mjs'], { cwd: pkg.dir, encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.stdout.trim(), 'ERR_PACKAGE_PATH_NOT_EXPORTED', r.stderr);
  });

  for (const resolution of ['nodenext', 'bundler'] as const) {
    test(`TypeScript (moduleResolution ${resolution}): a consumer type-checks, and misuse does not`, () => {
      const dir = pkg.dir;
      writeFileSync(
        join(dir, 'consumer.ts'),
        `import { SluiceClient, SluiceClientError, type ReadOptions, type SluiceClientErrorCode } from 'sluice/client';
import { Redis } from 'ioredis';

const client = new SluiceClient({ redis: new Redis({ lazyConnect: true }), sinks: ['products'] });
const applied: true = await client.waitFor('0/16B3748', { timeoutMs: 100 });
const product: { id: number } = await client.read('product:1', async () => ({ id: 1 }), { ttlMs: 1000, staleWhileRevalidateMs: 500 } satisfies ReadOptions);
const key: string = await client.keyFor('products', { id: 1 }, { table: 'public.products' });
try {
  await client.waitFor(123n);
} catch (err) {
  if (err instanceof SluiceClientError) {
    const code: SluiceClientErrorCode = err.code;
    const behind: readonly string[] | undefined = err.sinks;
    console.log(code, behind);
  }
}
// @ts-expect-error ttlMs is required
await client.read('k', () => 1, {});
// @ts-expect-error an LSN is a string or a bigint
await client.waitFor(5);
await client.close();
console.log(applied, product, key);
`,
      );
      // nodenext also checks the declarations themselves (skipLibCheck off); bundler only resolves them
      const compilerOptions =
        resolution === 'nodenext'
          ? { module: 'nodenext', moduleResolution: 'nodenext', skipLibCheck: false }
          : { module: 'esnext', moduleResolution: 'bundler', skipLibCheck: true };
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { ...compilerOptions, target: 'es2022', strict: true, noEmit: true, types: ['node'], typeRoots: [join(REPO_ROOT, 'node_modules', '@types')] },
          files: ['consumer.ts'],
        }),
      );
      const tsc = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
      const r = spawnSync(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    });
  }
});
