import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import { createSluiceTestEnv, eventually, type SluiceTestEnv } from '../support/sluice-env.js';
import { spawnSluice, type ManagedProcess } from '../harness/process.js';
import { failedKey } from '../../src/core/keyspace.js';

interface SinkBody {
  failed_messages: number;
  failed_total: number;
  failed_store: { messages: number; bytes: number; max_messages: number; full: boolean; dropped: number };
}
interface FailedPage {
  messages: { id: string; identity?: string; message: unknown; message_omitted?: { bytes: number; why: string } }[];
}

describe('the failed-message store is bounded', () => {
  let env: SluiceTestEnv;
  let redis: Redis;
  let sluice: ManagedProcess;
  let base: string;
  let configPath: string;

  const api = async <T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${base}${path}`, init);
    return { status: res.status, body: (await res.json()) as T };
  };
  const sink = async (name: string): Promise<SinkBody> => (await api<{ sinks: (SinkBody & { name: string })[] }>('/api/sinks')).body.sinks.find((s) => s.name === name)!;

  before(async () => {
    env = await createSluiceTestEnv();
    base = `http://127.0.0.1:${env.httpPort}`;
    await env.pg.query(`create table items (id int primary key, code text, body text)`);
    configPath = env.writeConfig(
      `  - name: items
    type: string
    tables: [items]
    key: "item:{code}"
    failed_max_messages: 3
  - name: feed
    type: list
    tables: [items]
    key: "feed:{code}"`,
      'apply:\n  failed_envelope_max_bytes: 300\n',
    );
    sluice = await env.start(configPath);
    redis = env.redis.client();
  });

  after(async () => {
    await env?.stop();
  });

  test('large envelopes are left out, failures past the bound are logged and counted, not stored; status and the API say it is full', async () => {
    // code is NULL: the key cannot be rendered, every row fails
    await env.pg.query(`insert into items select g, null, repeat('x', 100000) from generate_series(1, 5) g`);
    await eventually(() => sink('items'), (s) => s.failed_total === 5, 15_000, 'five failures');
    const s = await sink('items');
    assert.equal(s.failed_messages, 3, 'waiting now: what Redis holds');
    assert.equal(await redis.hlen(failedKey('items')), 3);
    assert.deepEqual({ ...s.failed_store, bytes: 0 }, { messages: 3, bytes: 0, max_messages: 3, max_bytes: 64 * 1024 * 1024, envelope_max_bytes: 300, full: true, dropped: 2 });
    // 100 kB rows, stored as their identity and reason
    const memory = Number(await redis.call('MEMORY', 'USAGE', failedKey('items')));
    assert.ok(memory < 10_000, `${memory} bytes for three failed messages of 100 kB rows`);
    const page = (await api<FailedPage>('/api/sinks/items/messages')).body;
    for (const m of page.messages) {
      assert.equal(m.message, null);
      assert.ok(m.message_omitted!.bytes >= 100_000);
      assert.match(m.identity!, /^\{"id":\d\}$/);
    }
    // the two not stored: each logged with its id and reason
    const dropped = await eventually(async () => sluice.lines.filter((l) => /message failed and was not stored/.test(l.line)), (l) => l.length === 2, 10_000, 'two log lines');
    for (const line of dropped) {
      assert.match(line.line, /"id":"0\/[0-9A-F]+:\d+"/);
      assert.match(line.line, /"not_stored":"the sink already keeps 3 failed messages \(failed_max_messages: 3\)"/);
      assert.match(line.line, /"sink":"items"/);
    }
    assert.equal(sluice.lines.filter((l) => /failed messages are full: the next failures are not stored/.test(l.line)).length, 1, 'said once, when it filled up');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    assert.match(metrics, /^sluice_failed_messages_dropped_total\{sink="items"\} 2$/m);
    assert.match(metrics, /^sluice_failed_messages_full\{sink="items"\} 1$/m);
    assert.match(metrics, /^sluice_failed_messages\{sink="items"\} 3$/m);
    assert.match(metrics, /^sluice_failed_messages\{sink="feed"\} 5$/m);

    const status = spawnSluice(['status', '--no-rate', '-c', configPath]);
    assert.equal((await status.exited).code, 0, status.tail(20));
    const out = status.stdout.join('\n');
    assert.match(out, /^items +string +config +active +.* 3 \(full\) +5$/m);
    assert.match(out, /^warning  failed messages of sink "items" are full \(3 of 3 messages, [\d.]+ kB of 67\.1 MB\); 2 failure\(s\) since start were not stored, only logged/m);
  });

  test('a state sink retries an entry without its envelope by reading the row again; a history sink cannot', async () => {
    await env.pg.query(`update items set code = 'c1' where id = 1`);
    await eventually(() => redis.exists('item:c1'), (n) => n === 1, 10_000, 'item:c1');
    const page = (await api<FailedPage>('/api/sinks/items/messages')).body;
    const first = page.messages.find((m) => m.identity === '{"id":1}');
    assert.ok(first, JSON.stringify(page));
    const retry = await api<{ outcome: string }>(`/api/sinks/items/messages/${first.id}/retry`, { method: 'POST' });
    assert.equal(retry.status, 200, JSON.stringify(retry.body));
    assert.match(retry.body.outcome, /^(applied|superseded)$/);
    const s = await sink('items');
    assert.equal(s.failed_messages, 2);
    assert.equal(s.failed_total, 5, 'the total is since start: a retry does not lower it');
    assert.equal(s.failed_store.full, false);

    const feed = (await api<FailedPage>('/api/sinks/feed/messages')).body.messages[0]!;
    const refused = await api<{ error: { code: string; message: string } }>(`/api/sinks/feed/messages/${feed.id}/retry`, { method: 'POST' });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'cannot_retry');
    assert.match(refused.body.error.message, /was kept without its envelope \(.*failed_envelope_max_bytes\)\), and a list sink replays the message itself: it cannot be retried; discard it/);
    const discard = await api<{ discarded: boolean }>(`/api/sinks/feed/messages/${feed.id}/discard`, { method: 'POST' });
    assert.equal(discard.body.discarded, true);
    assert.equal((await sink('feed')).failed_store.messages, 4);
  });

  test('after a restart the bounds count what Redis kept', async () => {
    await sluice.stop(5000);
    sluice = await env.start(configPath);
    const s = await sink('items');
    assert.equal(s.failed_messages, 2);
    assert.equal(s.failed_total, 0, 'since this start');
    assert.equal(s.failed_store.messages, 2);
    assert.ok(s.failed_store.bytes > 0);
    const ids = await redis.hkeys(failedKey('feed'));
    assert.equal((await sink('feed')).failed_store.messages, 4, ids.join(' '));
  });
});
