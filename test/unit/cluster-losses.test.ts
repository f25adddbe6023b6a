import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { WrittenLast, type LostWrite } from '../../src/redis/cluster-losses.js';
import { checkPositions, writePositions, type PositionWrite } from '../../src/redis/cluster-positions.js';
import { ReplyError, type Reply } from '../../src/redis/resp-connection.js';
import { encodeCommands, RespWriter } from '../../src/redis/resp-writer.js';

describe('WrittenLast: what a Cluster lane wrote last, to notice lost writes', () => {
  const make = (): { w: WrittenLast; losses: LostWrite[] } => {
    const losses: LostWrite[] = [];
    return { w: new WrittenLast((l) => losses.push(l)), losses };
  };

  test('a marker must hold the batch written last there, as loaded or as written', () => {
    const { w, losses } = make();
    w.loadedMarker(7, 'b1');
    w.markerFound(7, 'b1', 'b2');
    w.markerFound(8, null, 'b2');
    w.markerFound(7, 'b2', 'b3');
    assert.deepEqual(losses, []);
    // a failover to a replica that had b2 only
    w.markerFound(7, 'b2', 'b4');
    assert.deepEqual(losses, [{ slot: 7, expected: 'b3', found: 'b2' }]);
  });

  test('what a write whose reply was lost may have left is no loss; the batch\'s own id is none either', () => {
    const { w, losses } = make();
    w.markerFound(3, null, 'b1');
    w.maybeRan(3, 'b2');
    // the next batch finds b2 (it ran) or b1 (it did not): neither is a loss
    w.markerFound(3, 'b2', 'b3');
    w.maybeRan(5, 'b3');
    w.markerFound(5, null, 'b4');
    // an attempt of b5 whose reply was lost, found by the next attempt of b5
    w.markerFound(3, 'b5', 'b5');
    assert.deepEqual(losses, []);
    // once a marker's write is answered, the unsure value is no excuse any more
    w.markerFound(5, 'b3', 'b6');
    assert.deepEqual(losses, [{ slot: 5, expected: 'b4', found: 'b3' }]);
  });

  test('a sink\'s position must hold what was written last, or the value being written', () => {
    const { w, losses } = make();
    w.loadedPosition('s', '0/10');
    w.positionFound('s', 'sluice:pos:s', '0/10', '0/20');
    w.positionFound('s', 'sluice:pos:s', '0/20', '0/20');
    w.positionFound('t', 'sluice:pos:t', null, '0/5');
    assert.deepEqual(losses, []);
    w.positionFound('s', 'sluice:pos:s', null, '0/30');
    assert.deepEqual(losses, [{ key: 'sluice:pos:s', expected: '0/20', found: null }]);
  });

  test('a master\'s probe slot is the first it serves, kept while it serves it', () => {
    const { w } = make();
    let map = (slot: number): string | undefined => (slot < 5000 ? 'a' : slot < 10000 ? 'b' : 'c');
    assert.equal(w.probeOf('b', (s) => map(s)), 5000);
    map = (slot) => (slot < 6000 ? 'a' : slot < 10000 ? 'b' : 'c');
    assert.equal(w.probeOf('b', (s) => map(s)), 6000);
    assert.equal(w.probeOf('d', (s) => map(s)), -1);
    w.probeOf('c', (s) => map(s));
    w.keepProbes(new Set(['c']));
    assert.deepEqual([...w.probeSlots], [['c', 10000]]);
  });
});

describe('the sinks\' positions on a Cluster', () => {
  const list: PositionWrite[] = [
    ['a', 'sluice:pos:a', '0/10'],
    ['b', 'sluice:pos:b', '0/2A:3'],
  ];

  test('are SET … GET, or GET then SET on a master older than 6.2', () => {
    const out = new RespWriter(64);
    assert.equal(writePositions(out, list, true), 2);
    assert.deepEqual(Buffer.from(out.finish()), encodeCommands([['SET', 'sluice:pos:a', '0/10', 'GET'], ['SET', 'sluice:pos:b', '0/2A:3', 'GET']]));
    const old = new RespWriter(64);
    assert.equal(writePositions(old, list, false), 4);
    assert.deepEqual(Buffer.from(old.finish()), encodeCommands([['GET', 'sluice:pos:a'], ['SET', 'sluice:pos:a', '0/10'], ['GET', 'sluice:pos:b'], ['SET', 'sluice:pos:b', '0/2A:3']]));
  });

  test('replies: the value before, or undefined (sent again) where refused, lost or not understood', () => {
    const reply = fc.oneof(fc.constant<Reply>(null), fc.constantFrom<Reply>('0/9', 'OK'), fc.constantFrom('MOVED 1 127.0.0.1:1', 'OOM no').map((e): Reply => new ReplyError(e)), fc.constant<Reply>(3));
    fc.assert(
      fc.property(fc.array(reply, { minLength: 4, maxLength: 4 }), fc.boolean(), (rs, setGet) => {
        const { found, error } = checkPositions(setGet ? rs.slice(0, 2) : rs, list, setGet);
        let first: string | null = null;
        for (let j = 0; j < 2; j++) {
          const before = setGet ? rs[j]! : rs[2 * j]!;
          const after = setGet ? 'OK' : rs[2 * j + 1]!;
          const refusal = before instanceof ReplyError ? before : after instanceof ReplyError ? after : null;
          const ok = refusal === null && (before === null || typeof before === 'string');
          assert.equal(found[j], ok ? before : undefined);
          if (!ok) first ??= refusal?.message ?? `unexpected reply to a position write: ${String(before)}`;
        }
        // the first failure, in order
        assert.equal(error, first);
      }),
    );
    assert.deepEqual(checkPositions(null, list, true), { found: [undefined, undefined], error: null });
  });
});
