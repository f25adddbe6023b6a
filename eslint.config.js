// ESLint (flat config) for Sluice: `npm run lint`.
//
// Three kinds of check, all errors:
//  1. A few type-aware typescript-eslint rules that catch real bugs (promises nobody awaits or
//     handles, `await` on non-promises, promises passed where a void callback is expected) plus
//     `no-explicit-any` and `no-unused-vars`. Not all of `recommendedTypeChecked`: on this code it
//     reports hundreds of `no-unsafe-*` findings on parsed JSON, zod output and driver results,
//     and stylistic ones (`restrict-template-expressions`, `require-await`, …) that catch no bugs;
//     `tsc --strict` with `verbatimModuleSyntax` already covers typing and type-only imports.
//  2. No file import cycles in src/, type-only imports included (`import-x/no-cycle` for value
//     imports, the local `sluice/type-import-cycle` for cycles that need a type-only edge).
//  3. Dependency direction between the folders of src/ (`import-x/no-restricted-paths`): see LAYERS.
//
// Imports are resolved with eslint-import-resolver-typescript, the resolver import-x documents
// for TypeScript: it understands NodeNext's `./x.js` → `./x.ts` mapping and the tsconfig, and is
// maintained alongside import-x (both are built on the same unrs-resolver).

import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import typeImportCycle from './scripts/eslint-type-import-cycle.js';

const root = import.meta.dirname;

/**
 * The layers of src/, each with the folders (or root files) it may import from. Anything else of
 * Sluice's is forbidden to it; imports inside a folder are always allowed. Lowest first:
 *
 *   util, core                    leaves: util imports only util, core only core
 *   config                        core, util
 *   pg, redis, sinks              core, util, config — not each other
 *   functions                     + sinks
 *   plan (pure)                   + sinks, functions
 *   state                         core, util, config, pg
 *   metrics.ts                    core, util, config
 *   runtime/                      everything above: the one place where I/O meets the pure parts
 *   backfill                      + runtime/ (it acts on the running Pipeline)
 *   verify, control               + backfill (repair re-copies through the BackfillManager;
 *                                 control adds and removes sinks of a running Sluice)
 *   http, demo, app.ts, cli       top: nothing below imports them; cli is the entry point
 *   client                        core only: sluice/client, the package export applications
 *                                 import (built on its own into dist/client/)
 */
const BELOW_ENGINE = ['util', 'core', 'config', 'pg', 'redis', 'sinks', 'functions', 'plan', 'state', 'metrics.ts'];
const LAYERS = [
  { target: 'util', allow: [] },
  { target: 'core', allow: [] },
  { target: 'config', allow: ['core', 'util'] },
  { target: 'pg', allow: ['core', 'util', 'config'] },
  { target: 'redis', allow: ['core', 'util', 'config'] },
  { target: 'sinks', allow: ['core', 'util', 'config'] },
  { target: 'functions', allow: ['core', 'util', 'config', 'sinks'] },
  { target: 'plan', allow: ['core', 'util', 'config', 'sinks', 'functions'] },
  { target: 'state', allow: ['core', 'util', 'config', 'pg'] },
  { target: 'metrics.ts', allow: ['core', 'util', 'config'] },
  { target: 'runtime', allow: [...BELOW_ENGINE] },
  // Backfill and verify/repair drive a running Pipeline (runtime/).
  { target: 'backfill', allow: [...BELOW_ENGINE, 'runtime'] },
  { target: 'verify', allow: [...BELOW_ENGINE, 'runtime', 'backfill'] },
  { target: 'control', allow: [...BELOW_ENGINE, 'runtime', 'backfill'] },
  // Top: they may import anything below, but not the entry point or each other upwards.
  { target: 'http', allow: [...BELOW_ENGINE, 'runtime', 'backfill', 'verify', 'control'] },
  { target: 'demo', allow: [...BELOW_ENGINE] },
  { target: 'app.ts', allow: [...BELOW_ENGINE, 'runtime', 'backfill', 'verify', 'control', 'http'] },
  // cli/ may import everything.
  // sluice/client (applications import it): pure core/ and ioredis, nothing of the server
  { target: 'client', allow: ['core'] },
];

/**
 * An absolute glob for a layer name: a folder with everything under it, or a file of src/ (written
 * `@(name).ts` so that it is a glob too: import-x wants every `except` of a glob zone to be one, and
 * matches them as given, unresolved).
 */
const glob = (name) => {
  if (!name.endsWith('.ts')) return `${root}/src/${name}/**`;
  return name.includes('(') ? `${root}/src/${name}` : `${root}/src/${name.replace(/([^/]+)\.ts$/, '@($1).ts')}`;
};

const label = (name) => name.replace('/!(failed-retry).ts', '/ (but failed-retry.ts)');

// One zone per layer: importing anything in src/ that is not the layer itself or an allowed one.
const zones = LAYERS.map(({ target, allow }) => ({
  target: glob(target),
  from: `${root}/src/**`,
  except: [target, ...allow].map(glob),
  message: `${label(target)} may import only ${allow.length === 0 ? 'itself' : allow.map(label).join(', ')} (layers: eslint.config.js).`,
}));

export default defineConfig(
  { ignores: ['node_modules/', 'dist/', 'coverage/', '.sluice-demo/'] },
  {
    // web/: the console (its own tsconfig, found by the project service)
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/*.ts', 'web/src/**/*.ts', 'web/src/**/*.tsx'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: root },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    plugins: { '@typescript-eslint': tseslint.plugin, 'import-x': importX },
    settings: {
      // import-x reads (for no-cycle) only files with these extensions, with the parser above.
      'import-x/extensions': ['.ts', '.js', '.mjs'],
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: `${root}/tsconfig.json` })],
    },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          // node:test's describe/test/it return promises the runner itself tracks: not awaiting
          // them at the top of a file or inside a describe is how the runner is meant to be used.
          allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['describe', 'suite', 'test', 'it'] }],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrors: 'all',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    plugins: { sluice: { rules: { 'type-import-cycle': typeImportCycle } } },
    rules: {
      'import-x/no-cycle': 'error',
      'sluice/type-import-cycle': ['error', { root: `${root}/src` }],
      'import-x/no-restricted-paths': ['error', { zones }],
    },
  },
  {
    // Tests, bench and scripts may use `any` where a test pokes at internals or malformed input.
    files: ['test/**/*.ts', 'bench/**/*.ts', 'scripts/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'warn' },
  },
  {
    // The config and the local rule are plain JavaScript outside the TypeScript project.
    files: ['**/*.js', '**/*.mjs'],
    rules: { 'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' }] },
  },
);
