// sluice check: what a Redis version cannot do for the sinks that write to it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sinkSchema, type SinkConfig } from '../../src/config/schema.js';
import { versionFindings } from '../../src/redis/inspect.js';

const cfgOf = (c: Record<string, unknown>): SinkConfig => sinkSchema.parse({ name: 'x', tables: ['t'], ...c }) as SinkConfig;

describe('versionFindings', () => {
  const trimmed = cfgOf({ name: 'events', type: 'stream', max_age_ms: 60000 });
  const plain = cfgOf({ name: 'cache', type: 'string' });

  test('Redis 6.2 and later, or an unknown version: nothing to say', () => {
    for (const v of ['6.2.0', '7.0.15', '7.4.1', '10.0.0', '?', '']) assert.deepEqual(versionFindings('main', v, [trimmed, plain]), []);
  });

  test('Redis 6.0 / 6.1: an error only when a stream sink trims by age (MINID), naming the sinks', () => {
    assert.deepEqual(versionFindings('main', '6.0.16', [plain]), []);
    const [f, ...rest] = versionFindings('main', '6.0.16', [plain, trimmed]);
    assert.equal(rest.length, 0);
    assert.equal(f?.severity, 'error');
    assert.match(f?.message ?? '', /^redis\.main: Redis 6\.0\.16 .*MINID.*6\.2.*sink\(s\) events$/);
  });

  test('before Redis 6: an error whatever the sinks', () => {
    const [f] = versionFindings('old', '5.0.14', []);
    assert.equal(f?.severity, 'error');
    assert.match(f?.message ?? '', /redis\.old: Redis 5\.0\.14 is too old: Sluice needs Redis 6\.0 or newer/);
  });
});
