// ESLint rule `sluice/type-import-cycle`: a type-only import that closes a file cycle.
//
// `import-x/no-cycle` skips `import type` edges (by design, with no option to include them), so a
// cycle that runs through one is never reported there. Sluice wants no file cycles at all, type-only
// or not: this rule finds the strongly connected components of src/'s whole import graph (value and
// type edges, resolved by TypeScript itself) and reports each type-only import or re-export whose
// target lies in the importing file's component. Cycles made only of value imports are left to
// `import-x/no-cycle`, so no cycle is reported twice. Some edge of every cycle is reported: either
// the cycle has a type-only edge (reported here) or it is all values (reported by import-x).

import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const COMPILER_OPTIONS = {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  allowImportingTsExtensions: false,
};

function tsFilesUnder(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...tsFilesUnder(full));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

/** The .ts file a relative specifier names, or null (packages and unresolved paths). */
function resolveRelative(specifier, fromFile) {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) return null;
  const r = ts.resolveModuleName(specifier, fromFile, COMPILER_OPTIONS, ts.sys, undefined, undefined, ts.ModuleKind.ESNext);
  const resolved = r.resolvedModule?.resolvedFileName;
  return resolved === undefined ? null : path.resolve(resolved);
}

/** Tarjan's algorithm: component id per file. */
function components(edges) {
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const component = new Map();
  let next = 0;
  let ids = 0;
  const visit = (v) => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v), index.get(w)));
      }
    }
    if (low.get(v) === index.get(v)) {
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        component.set(w, ids);
      } while (w !== v);
      ids++;
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return component;
}

// One graph per state of the tree: rebuilt when a file is added, removed or modified, so an editor's
// long-lived ESLint sees edits too. Building it takes a few milliseconds for src/.
let cached = { key: '', edges: new Map(), component: new Map() };

function graphOf(root) {
  const files = tsFilesUnder(root);
  const key = files.map((f) => `${f}:${fs.statSync(f).mtimeMs}`).join('|');
  if (key === cached.key) return cached;
  const edges = new Map();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, false);
    const targets = new Set();
    for (const { fileName } of importedFiles) {
      const target = resolveRelative(fileName, file);
      if (target !== null && target.startsWith(root + path.sep)) targets.add(target);
    }
    edges.set(file, targets);
  }
  cached = { key, edges, component: components(edges) };
  return cached;
}

/** Shortest import route from `from` back to `to`, staying inside their component. */
function route(graph, from, to) {
  const comp = graph.component.get(from);
  const prev = new Map([[from, null]]);
  const queue = [from];
  while (queue.length > 0) {
    const v = queue.shift();
    if (v === to) break;
    for (const w of graph.edges.get(v) ?? []) {
      if (!prev.has(w) && graph.component.get(w) === comp) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  const out = [];
  for (let v = to; v !== null && v !== undefined; v = prev.get(v)) out.unshift(v);
  return out;
}

function isTypeOnly(node) {
  if (node.type === 'TSImportType') return true;
  const kind = node.type === 'ImportDeclaration' ? 'importKind' : 'exportKind';
  if (node[kind] === 'type') return true;
  const specifiers = node.specifiers ?? [];
  return specifiers.length > 0 && specifiers.every((s) => s[kind] === 'type');
}

export default {
  meta: {
    type: 'problem',
    docs: { description: 'Forbid type-only imports that close a file import cycle (import-x/no-cycle skips them)' },
    schema: [{ type: 'object', properties: { root: { type: 'string' } }, additionalProperties: false }],
    messages: {
      cycle: 'Import cycle through a type-only import: {{route}}. Move the shared types down a layer.',
    },
  },
  create(context) {
    const root = path.resolve(context.options[0]?.root ?? 'src');
    const file = path.resolve(context.physicalFilename);
    if (!file.startsWith(root + path.sep)) return {};
    const graph = graphOf(root);
    const comp = graph.component.get(file);
    if (comp === undefined) return {};
    const check = (node, specifier) => {
      if (typeof specifier !== 'string' || !isTypeOnly(node)) return;
      const target = resolveRelative(specifier, file);
      if (target === null || target === file || graph.component.get(target) !== comp) return;
      const names = [file, ...route(graph, target, file)].map((f) => path.relative(root, f));
      context.report({ node, messageId: 'cycle', data: { route: names.join(' → ') } });
    };
    return {
      ImportDeclaration: (node) => check(node, node.source.value),
      ExportNamedDeclaration: (node) => check(node, node.source?.value),
      ExportAllDeclaration: (node) => check(node, node.source.value),
      TSImportType: (node) => check(node, node.source?.value ?? node.argument?.literal?.value),
    };
  },
};
