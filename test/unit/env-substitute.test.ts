import { test } from 'node:test';
import assert from 'node:assert/strict';
import { at } from '../support/at.js';
import { LineCounter, parseDocument } from 'yaml';
import {
  protectReferences,
  resolvePlainScalar,
  substituteEnv,
  substituteEnvInDocument,
  unprotect,
} from '../../src/config/env-substitute.js';

test('${VAR} is replaced by its value', () => {
  const r = substituteEnv('redis://${HOST}:${PORT}/0', { HOST: 'cache', PORT: '6380' });
  assert.deepEqual(r, { value: 'redis://cache:6380/0', variables: ['HOST', 'PORT'], errors: [] });
});

test('an unset variable without a default is an error naming it; set but empty is ""', () => {
  const r = substituteEnv('x${MISSING}y', {});
  assert.equal(r.errors.length, 1);
  assert.equal(at(r.errors, 0).variable, 'MISSING');
  assert.equal(at(r.errors, 0).message, 'environment variable MISSING is not set (write ${MISSING:-default} to give a default)');
  assert.deepEqual(substituteEnv('x${EMPTY}y', { EMPTY: '' }), { value: 'xy', variables: ['EMPTY'], errors: [] });
});

test('${VAR:-default} uses the default when the variable is unset or empty', () => {
  assert.equal(substituteEnv('${A:-fallback}', {}).value, 'fallback');
  assert.equal(substituteEnv('${A:-fallback}', { A: '' }).value, 'fallback');
  assert.equal(substituteEnv('${A:-fallback}', { A: 'set' }).value, 'set');
  assert.equal(substituteEnv('${A:-}', {}).value, '');
  assert.equal(substituteEnv('${A:-a:-b c}', {}).value, 'a:-b c');
});

test('defaults may hold references themselves', () => {
  assert.equal(substituteEnv('${A:-${B:-deep}}', {}).value, 'deep');
  assert.equal(substituteEnv('${A:-${B}}!', { B: 'b' }).value, 'b!');
  const r = substituteEnv('${A:-${B}}', {});
  assert.deepEqual(r.errors.map((e) => e.variable), ['B']);
  // the default is not looked at when the variable is set
  assert.deepEqual(substituteEnv('${A:-${B}}', { A: 'a' }).errors, []);
});

test('$${ is a literal ${ and a lone $ is kept', () => {
  assert.equal(substituteEnv('$${HOME}', {}).value, '${HOME}');
  assert.equal(substituteEnv('pa$$word $HOME $', {}).value, 'pa$$word $HOME $');
  assert.deepEqual(substituteEnv('cost: $5', {}).errors, []);
});

test('malformed references are errors', () => {
  assert.match(at(substituteEnv('${1ABC}', {}).errors, 0).message, /^invalid variable reference "\$\{1ABC\}"/);
  assert.match(at(substituteEnv('${}', {}).errors, 0).message, /^invalid variable reference/);
  assert.match(at(substituteEnv('${A B}', {}).errors, 0).message, /^invalid variable reference/);
  assert.match(at(substituteEnv('abc ${HOME', {}).errors, 0).message, /^unterminated "\$\{"/);
});

test('plain values are read as YAML 1.2 core scalars', () => {
  assert.equal(resolvePlainScalar('8080'), 8080);
  assert.equal(resolvePlainScalar('-3'), -3);
  assert.equal(resolvePlainScalar('1.5'), 1.5);
  assert.equal(resolvePlainScalar('0x1F'), 31);
  assert.equal(resolvePlainScalar('true'), true);
  assert.equal(resolvePlainScalar('False'), false);
  assert.equal(resolvePlainScalar('~'), null);
  assert.equal(resolvePlainScalar('yes'), 'yes');
  assert.equal(resolvePlainScalar('007abc'), '007abc');
  assert.equal(resolvePlainScalar(''), '');
});

test('protectReferences keeps the length of the text and unprotect undoes it', () => {
  const text = 'a: { b: ${X:-${Y}} }\nc: $${Z}\nd: ${unterminated';
  const p = protectReferences(text);
  assert.equal(p.length, text.length);
  assert.ok(!p.slice(0, 20).includes('${'));
  assert.equal(unprotect(p), text);
});

function substitutedDoc(text: string, env: Record<string, string>) {
  const lineCounter = new LineCounter();
  const doc = parseDocument(protectReferences(text), { lineCounter });
  assert.deepEqual(doc.errors, []);
  const result = substituteEnvInDocument(doc, env);
  return { doc, lineCounter, result };
}

test('document: values are substituted, keys and comments are not', () => {
  const text = `# \${COMMENT}
a: \${A}
"\${K}": x
list: [\${B}, "\${B}", 'lit']
block: |
  line \${A}
`;
  const { doc, result } = substitutedDoc(text, { A: 'aa', B: '42' });
  assert.deepEqual(result.problems, []);
  assert.deepEqual(doc.toJS(), { a: 'aa', '${K}': 'x', list: [42, '42', 'lit'], block: 'line aa\n' });
  assert.deepEqual(result.substituted, [
    { path: ['a'], variables: ['A'] },
    { path: ['list', 0], variables: ['B'] },
    { path: ['list', 1], variables: ['B'] },
    { path: ['block'], variables: ['A'] },
  ]);
});

test('document: references work inside flow collections', () => {
  const { doc, result } = substitutedDoc('tls: { ca: ${CA:-ca.pem}, servername: ${NAME} }\nnodes: [${N1}, x]\n', { NAME: 'r', N1: 'n' });
  assert.deepEqual(result.problems, []);
  assert.deepEqual(doc.toJS(), { tls: { ca: 'ca.pem', servername: 'r' }, nodes: ['n', 'x'] });
});

test('document: a missing variable is reported with its data path and node', () => {
  const text = 'http:\n  port: 1\n  token: ${TOKEN}\nsinks:\n  - { key: "a:${K}" }\n';
  const { doc, lineCounter, result } = substitutedDoc(text, {});
  assert.deepEqual(
    result.problems.map((p) => [p.path, p.variable, lineCounter.linePos(p.node.range?.[0] ?? -1).line]),
    [
      [['http', 'token'], 'TOKEN', 3],
      [['sinks', 0, 'key'], 'K', 5],
    ],
  );
  // left as written
  assert.deepEqual(doc.toJS(), { http: { port: 1, token: '${TOKEN}' }, sinks: [{ key: 'a:${K}' }] });
});

test('document: an environment value never changes the structure', () => {
  const { doc } = substitutedDoc('a: ${V}\nb: "${V}"\n', { V: 'x: y\n- z # c' });
  assert.deepEqual(doc.toJS(), { a: 'x: y\n- z # c', b: 'x: y\n- z # c' });
});
