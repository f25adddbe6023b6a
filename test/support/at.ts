import assert from 'node:assert/strict';

/**
 * Indexing that a test can rely on (the project is ready for noUncheckedIndexedAccess): the
 * element or value, or the test fails right there with what was missing, not with a TypeError
 * on `undefined` a line later.
 */

/** `items[index]`; fails the test when there is no such element. */
export function at<T>(items: readonly T[], index: number): T {
  const item = items[index];
  assert.ok(item !== undefined, `expected an element at index ${index}; there are ${items.length}`);
  return item;
}

/** `record[key]`; fails the test when the key is absent. */
export function entry<T>(record: Readonly<Record<string, T>>, key: string): T {
  const value = record[key];
  assert.ok(value !== undefined, `expected "${key}"; the keys are ${Object.keys(record).join(', ') || '(none)'}`);
  return value;
}
