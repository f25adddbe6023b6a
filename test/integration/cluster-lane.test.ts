// The Cluster apply lane against a real 3-master Cluster (one replica each): a batch goes as one
// write per master, and each slot applies it exactly once through a slot moved under the lane
// (MOVED), a slot caught half-migrated (ASK / TRYAGAIN) and a master killed mid-batch (failover).
// Counters (INCR) show a batch applied twice as clearly as one lost. SETs of the batch id, each
// from its own transaction, go without MULTI (plain groups, redis/plain-group.ts): they must end
// holding the last batch, with no false alarm of lost writes when one is sent again. The sink's
// position (`sluice:pos:s`) is written once every slot has the batch.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Cluster } from 'ioredis';
import { pino } from 'pino';
import { startRedisCluster, type TestRedisCluster } from '../harness/redis-cluster.js';
import { nodeCommand, parseInfo, waitUntil } from '../harness/redis-node.js';
import type { Socket } from 'node:net';
import { ClusterApplyLane } from '../../src/redis/cluster-apply-lane.js';
import type { RespConnection } from '../../src/redis/resp-connection.js';
import type { WrittenLast } from '../../src/redis/cluster-losses.js';
import type { ApplyPart, DataLoss } from '../../src/redis/apply-lane.js';
import type { CommandOrigin, RedisCommand } from '../../src/core/command.js';
import { slotOf, slotTag } from '../../src/redis/slot-tags.js';
import { positionKey, slotBatchMarkerKey, slotPositionKey } from '../../src/core/keyspace.js';

const KEYS = Array.from({ length: 300 }, (_, i) => `c:${i}`);
/** keys sharing one slot, for the migration tests */
const tagged = (tag: string): string[] => Array.from({ length: 10 }, (_, i) => `m:{${tag}}:${i}`);

const origin = (idx: number): CommandOrigin => ({ sink: 's', change: { idx }, meta: { commitLsn: 1000n } }) as unknown as CommandOrigin;

/** keys set to the batch id, each by its own transaction: plain groups where their slot holds nothing else */
const PLAIN = Array.from({ length: 300 }, (_, i) => `p:${i}`);
const ownTx = (i: number): CommandOrigin => ({ sink: 's', change: { idx: 0 }, meta: { commitLsn: BigInt(5000 + i) } }) as unknown as CommandOrigin;

let batchNo = 0;
function part(keys: readonly string[], extra: RedisCommand[] = [], sets: readonly string[] = PLAIN): ApplyPart {
  batchNo++;
  const batchId = `b${batchNo}`;
  const commands: RedisCommand[] = [...keys.map((k) => ['INCR', k]), ...extra, ...sets.map((k) => ['SET', k, batchId])];
  return {
    batchId,
    commands,
    // no origin: nothing is skipped as a replay; extra commands get one (their refusal is reported)
    origins: commands.map((_, i) => (i < keys.length ? null : i < keys.length + extra.length ? origin(i) : ownTx(i))),
    positions: [['s', `0/${batchNo}`]],
    unlinkPrefixes: [],
  };
}

describe('Cluster apply lane', () => {
  let cluster: TestRedisCluster;
  let client: Cluster;
  let lane: ClusterApplyLane;
  const losses: DataLoss[] = [];
  const expected = new Map<string, number>();
  /** plain keys: the batch that set each last */
  const lastSet = new Map<string, string>();

  /** the lane's client: Sluice's Cluster options, and no periodic slot map refresh (the map must go stale) */
  const newClient = (): Cluster => {
    const c = new Cluster(cluster.seedUrls.map((u) => ({ host: '127.0.0.1', port: Number(new URL(u).port) })), {
      enableOfflineQueue: false,
      scaleReads: 'master',
      retryDelayOnFailover: 0,
      retryDelayOnMoved: 0,
      slotsRefreshInterval: 0,
      lazyConnect: true,
      redisOptions: { maxRetriesPerRequest: 0, connectionName: 'sluice-test' },
    });
    c.on('error', () => {});
    return c;
  };

  const apply = async (p: ApplyPart): Promise<void> => {
    const { rejected } = await lane.apply(p);
    assert.deepEqual(rejected, []);
    for (const c of p.commands) if (c[0] === 'INCR') expected.set(c[1]!, (expected.get(c[1]!) ?? 0) + 1);
    for (const c of p.commands) if (c[0] === 'SET' && c[2] === p.batchId) lastSet.set(c[1]!, p.batchId);
  };

  const check = async (p: ApplyPart): Promise<void> => {
    const reader = cluster.client();
    try {
      for (const [k, n] of expected) assert.equal(await reader.get(k), String(n), k);
      for (const [k, b] of lastSet) assert.equal(await reader.get(k), b, k);
      // a slot holding only plain SETs has no MULTI, nor bookkeeping of its own: the sink's position covers it
      assert.equal(await reader.get(positionKey('s')), p.positions[0]![1], 'position of the sink');
      for (const slot of new Set(p.commands.filter((c) => c[0] === 'INCR').map((c) => slotOf(c[1]!)))) {
        assert.equal(await reader.get(slotBatchMarkerKey('test@1', 'main', slotTag(slot))), p.batchId, `marker of slot ${slot}`);
        assert.equal(await reader.get(slotPositionKey('s', slotTag(slot))), p.positions[0]![1], `position of slot ${slot}`);
      }
    } finally {
      reader.disconnect();
    }
    assert.deepEqual(losses, []);
  };

  const masterOf = async (slot: number): Promise<{ id: string; port: number }> => {
    const t = await cluster.topology();
    const m = t.find((n) => n.role === 'master' && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!m) throw new Error(`no master serves slot ${slot}`);
    return m;
  };

  /** moves the keys of `slot` (all, or the first `limit`) from one master to another, as redis-cli --cluster does */
  const migrateKeys = async (slot: number, fromPort: number, toPort: number, limit = 1000): Promise<void> => {
    const keys = (await nodeCommand(fromPort, ['CLUSTER', 'GETKEYSINSLOT', slot, limit])) as string[];
    if (keys.length > 0) await nodeCommand(fromPort, ['MIGRATE', '127.0.0.1', toPort, '', 0, 5000, 'KEYS', ...keys]);
  };
  const startMigration = async (slot: number, from: { id: string; port: number }, to: { id: string; port: number }): Promise<void> => {
    await nodeCommand(to.port, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id]);
    await nodeCommand(from.port, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id]);
  };
  const endMigration = async (slot: number, to: { id: string }): Promise<void> => {
    for (const n of await cluster.topology()) if (n.role === 'master' && !n.failed) await nodeCommand(n.port, ['CLUSTER', 'SETSLOT', slot, 'NODE', to.id]);
    await cluster.waitForOk();
  };

  before(async () => {
    cluster = await startRedisCluster({ replicasPerMaster: 1 });
    client = newClient();
    await client.connect();
    lane = new ClusterApplyLane('main', client, pino({ level: 'silent' }), (l) => losses.push(l), 'test@1');
    await lane.load(['s']);
  });

  after(async () => {
    lane?.stop();
    client?.disconnect();
    await cluster?.stop();
  });

  /** GETs served by the masters so far (the lane reads markers with SET … GET on Redis 6.2+) */
  const getCalls = async (): Promise<number> => {
    let n = 0;
    for (const m of (await cluster.topology()).filter((t) => t.role === 'master' && !t.failed)) {
      n += Number(/calls=(\d+)/.exec(parseInfo(await nodeCommand(m.port, ['INFO', 'commandstats'])).cmdstat_get ?? '')?.[1] ?? 0);
    }
    return n;
  };

  test('a batch over every master: each slot once, its marker and position beside the data; refusals reported', async () => {
    const p = part([...KEYS, ...tagged('x'), ...tagged('y')], [['SET', 'str', 'v']]);
    const gets = await getCalls();
    await apply(p);
    assert.equal(await getCalls(), gets, 'markers are read and written by SET … GET, with no GET');
    await check(p);
    assert.equal(lane.retries, 0);
    const refused = part([], [['HSET', 'str', 'f', 'v']]);
    const { rejected } = await lane.apply(refused);
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]!.origin, refused.origins[0]);
    assert.match(rejected[0]!.error, /WRONGTYPE/);
  });

  test('MOVED mid-batch: a slot moved under the lane is refreshed and sent to its new master, once', async () => {
    const slot = slotOf(KEYS[0]!);
    const from = await masterOf(slot);
    const to = (await cluster.topology()).find((n) => n.role === 'master' && n.port !== from.port)!;
    await startMigration(slot, from, to);
    await migrateKeys(slot, from.port, to.port);
    await endMigration(slot, to);
    const retries = lane.retries;
    const p = part(KEYS);
    await apply(p);
    assert.ok(lane.retries > retries, 'the lane met MOVED (its slot map was stale)');
    assert.equal((await masterOf(slot)).port, to.port);
    await check(p);
  });

  /** Applies `p` while the slot of `keys` is half migrated (5 of them moved), then ends the move; `p` must apply once. */
  const applyHalfMigrated = async (keys: readonly string[], p: ApplyPart): Promise<void> => {
    const slot = slotOf(keys[0]!);
    const from = await masterOf(slot);
    const to = (await cluster.topology()).find((n) => n.role === 'master' && n.port !== from.port)!;
    await startMigration(slot, from, to);
    await migrateKeys(slot, from.port, to.port, 5);
    const retries = lane.retries;
    const applying = apply(p);
    await waitUntil('the lane to retry the migrating slot', 60_000, async () => lane.retries > retries);
    assert.equal(lane.state, 'retrying');
    await migrateKeys(slot, from.port, to.port);
    await endMigration(slot, to);
    await applying;
    await check(p);
  };

  test('ASK / TRYAGAIN: a half-migrated slot waits for the migration to end, then applies once', async () => {
    // half the slot's keys on each side: no MULTI over all of them can run on either node
    const keys = tagged('x');
    await applyHalfMigrated(keys, part([...keys, ...KEYS]));
  });

  test('a plain group caught half-migrated: sent again whole once the move ends, no false data loss', async () => {
    // the moved keys' SETs are refused (ASK) while the others run: the slot's positions wait for all of them
    const keys = tagged('z');
    await apply(part([], [], keys));
    await applyHalfMigrated(keys, part([], [], keys));
  });

  for (const [cut, what] of [[1, 'data'], [2, 'position']] as const) {
    test(`replies lost after a master ran its share of a batch (${what}): sent again, no false data loss`, async () => {
      await apply(part(KEYS));
      // the lane's writes to the master of the sink's position key: the cut-th (1: the batch's data, 2: the
      // position) is cut right after it leaves (Redis runs it, its replies are lost)
      const conns = (lane as unknown as { conns: Map<string, RespConnection> }).conns;
      const conn = conns.get(client.slots[slotOf(positionKey('s'))]![0]!)!;
      const original = conn.request.bind(conn);
      let writes = 0;
      conn.request = (payload, count) => {
        if (++writes === cut) conn.request = original;
        const pending = original(payload, count);
        if (writes === cut) (conn as unknown as { socket: Socket | null }).socket?.destroy();
        return pending;
      };
      const retries = lane.retries;
      const p = part(KEYS);
      await apply(p);
      conn.request = original;
      assert.ok(lane.retries > retries, 'the write was cut');
      await check(p);
    });
  }

  test('a master killed mid-batch: its slots are applied once on the promoted replica', async () => {
    const before = part(KEYS);
    await apply(before);
    const slot = slotOf(KEYS[1]!);
    const master = await masterOf(slot);
    // the replica has the last batch: the failover loses nothing
    assert.equal(await nodeCommand(master.port, ['WAIT', 1, 10_000]), 1);
    await cluster.killNode(master.port);
    const retries = lane.retries;
    const p = part(KEYS);
    const applying = apply(p);
    await waitUntil('the lane to retry the dead master\'s slots', 60_000, async () => lane.retries > retries);
    // the replica promotes itself once the master is seen failed (cluster-node-timeout)
    await cluster.waitForOk(60_000);
    await applying;
    assert.notEqual((await masterOf(slot)).port, master.port);
    await check(p);
  });

  test('a lane started on a Cluster with positions skips replays, and stops looking once past them', async () => {
    // its own instance and sink: the main lane's keys and expectations stay as they are
    const setPart = (key: string, value: string, commitLsn: bigint, position: string): ApplyPart => ({
      batchId: `r${++batchNo}`,
      commands: [['SET', key, value]],
      origins: [{ sink: 's2', change: { idx: 0 }, meta: { commitLsn } } as unknown as CommandOrigin],
      positions: [['s2', position]],
      unlinkPrefixes: [],
    });
    const newLane = async (): Promise<ClusterApplyLane> => {
      const l = new ClusterApplyLane('main', client, pino({ level: 'silent' }), (loss) => losses.push(loss), 'test@2');
      await l.load(['s2']);
      return l;
    };
    const first = await newLane();
    await first.apply(setPart('r:1', 'a', 0x40n, '0/50'));
    first.stop();
    const lane2 = await newLane();
    const reader = cluster.client();
    try {
      // a replay: the sink's position (0/50) covers the change (0/40)
      await lane2.apply(setPart('r:1', 'b', 0x40n, '0/49'));
      assert.equal(await reader.get('r:1'), 'a');
      // past the furthest position loaded: nothing can be a replay any more, nothing is looked up
      await lane2.apply(setPart('r:2', 'c', 0x55n, '0/60'));
      assert.equal((lane2 as unknown as { replay: Map<string, unknown> }).replay.size, 0);
      // (a change that old cannot come after that one: this only shows the lookup is gone)
      await lane2.apply(setPart('r:1', 'd', 0x40n, '0/61'));
      assert.equal(await reader.get('r:1'), 'd');
      // a crash after every slot had a batch, before the sink's position said so: the batch comes again
      const incr = 'r:{n}:count';
      const batch: ApplyPart = {
        batchId: `r${++batchNo}`,
        commands: [['INCR', incr], ['SET', 'r:3', 'x']],
        origins: [0, 1].map((idx) => ({ sink: 's2', change: { idx }, meta: { commitLsn: 0x70n } }) as unknown as CommandOrigin),
        positions: [['s2', '0/80']],
        unlinkPrefixes: [],
      };
      await lane2.apply(batch);
      lane2.stop();
      await reader.set(positionKey('s2'), '0/61');
      const lane3 = await newLane();
      try {
        // the counter's slot has the batch by its MULTI's position: not counted twice; the plain SET is written again
        await reader.set('r:3', 'changed by hand');
        await lane3.apply({ ...batch, batchId: `r${++batchNo}` });
        assert.equal(await reader.get(incr), '1');
        assert.equal(await reader.get('r:3'), 'x');
        assert.equal(await reader.get(positionKey('s2')), '0/80');
      } finally {
        lane3.stop();
      }
    } finally {
      reader.disconnect();
    }
    assert.deepEqual(losses, []);
  });

  test('lost writes are noticed by the sink\'s position and by each master\'s probe (the last test: it reports losses)', async () => {
    await apply(part([]));
    const reader = cluster.client();
    try {
      // what a failover to a replica that lacked the last batch does to the position's master
      await reader.del(positionKey('s'));
      assert.equal(losses.length, 0);
      await lane.apply(part([]));
      assert.equal(losses.length, 1);
      assert.equal(losses[0]?.found, null);
      // … and to another master: its probe (the marker of the first slot it serves) is not the last batch written there
      const probes = (lane as unknown as { written: WrittenLast }).written.probeSlots;
      assert.equal(probes.size, 3, 'a probe per master (the one killed above is gone)');
      const [node, slot] = [...probes].find(([n]) => n !== client.slots[slotOf(positionKey('s'))]![0])!;
      assert.equal(client.slots[slot]![0], node);
      await reader.del(slotBatchMarkerKey('test@1', 'main', slotTag(slot)));
      await lane.apply(part([]));
      assert.equal(losses.length, 2);
      assert.equal(losses[1]?.found, null);
    } finally {
      reader.disconnect();
    }
  });
});
