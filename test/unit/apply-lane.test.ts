import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withAppliedPositions, type ApplyPart } from '../../src/redis/apply-lane.js';
import type { CommandOrigin } from '../../src/core/command.js';

const origin = {} as CommandOrigin;

test('withAppliedPositions: SET and PUBLISH sluice:applied:<sink> after the data, as bookkeeping, for sinks with a position', () => {
  const part: ApplyPart = {
    batchId: 'b1',
    commands: [['SET', 'k', 'v']],
    origins: [origin],
    positions: [
      ['a', '0/16B3748'],
      ['b', null],
      ['c', '0/16B3748:3'],
    ],
    unlinkPrefixes: [],
  };
  const { commands, origins } = withAppliedPositions(part);
  assert.deepEqual(commands, [
    ['SET', 'k', 'v'],
    ['SET', 'sluice:applied:a', '0/16B3748'],
    ['PUBLISH', 'sluice:applied:a', '0/16B3748'],
    ['SET', 'sluice:applied:c', '0/16B3748:3'],
    ['PUBLISH', 'sluice:applied:c', '0/16B3748:3'],
  ]);
  assert.deepEqual(origins, [origin, null, null, null, null]);
  // the part itself is left as it was (its arrays are the planner's)
  assert.equal(part.commands.length, 1);
});

test('withAppliedPositions: no position, the part as it is (no copy)', () => {
  const part: ApplyPart = { batchId: 'b2', commands: [['DEL', 'k']], origins: [origin], positions: [['a', null]], unlinkPrefixes: [] };
  const out = withAppliedPositions(part);
  assert.equal(out.commands, part.commands);
  assert.equal(out.origins, part.origins);
});
