// A throwaway Redis Sentinel setup for the integration tests: one master, one replica and three
// sentinels (quorum 2, down-after-milliseconds 1000, failover-timeout 3000), from the
// redis-server on PATH (sentinels as `redis-server sentinel.conf --sentinel`), on free ports of
// 127.0.0.1, in one temp dir. Never touches the system Redis.

import { rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/util/free-port.js';
import { onProcessExit } from '../../src/util/process.js';
import type { ManagedProcess } from '../../src/util/process.js';
import { nodeCommand, parseInfo, plainPing, spawnRedisServer, tryNodeCommand, waitUntil } from './redis-node.js';

export interface TestRedisSentinel {
  /** the monitored master group's name ("sluicemaster") */
  readonly masterName: string;
  /** redis://127.0.0.1:PORT of each sentinel */
  readonly sentinelUrls: string[];
  /** the current master (changes with failover() / killMaster()) */
  readonly master: { port: number; url: string };
  /** the current replica */
  readonly replica: { port: number; url: string };
  /**
   * SENTINEL FAILOVER; waits until every sentinel reports the former replica as master and
   * the former master replicates from it.
   */
  failover(): Promise<void>;
  /**
   * SIGKILLs the master; by default waits until the sentinels have promoted the replica. The
   * killed server stays down until startServer(port).
   */
  killMaster(opts?: { waitForFailover?: boolean }): Promise<void>;
  /** starts a killed data server again (empty); the sentinels make it a replica */
  startServer(port: number): Promise<void>;
  /** what the sentinels report as the master's port (all must agree; undefined otherwise) */
  reportedMasterPort(): Promise<number | undefined>;
  /** stops everything and removes the temp dir; idempotent */
  stop(): Promise<void>;
}

export interface StartRedisSentinelOptions {
  /** default 1000 */
  downAfterMs?: number;
  /** default 3000 */
  failoverTimeoutMs?: number;
  /** extra redis-server arguments for the master and the replica, e.g. ['--requirepass', 'x'] */
  serverArgs?: string[];
}

const MASTER_NAME = 'sluicemaster';

export async function startRedisSentinel(opts: StartRedisSentinelOptions = {}): Promise<TestRedisSentinel> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-sentinel-'));
  const unregisterDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  const [masterPort, replicaPort, ...sentinelPorts] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]) as [number, number, ...number[]];
  const procs = new Map<number, ManagedProcess>();
  let current = { master: masterPort, replica: replicaPort };
  let stopped = false;

  const serverArgs = (port: number, replicaOf?: number): string[] => {
    const d = join(dir, String(port));
    mkdirSync(d, { recursive: true });
    // a config file, so that the sentinels' CONFIG REWRITE after a failover works
    const conf = join(d, 'redis.conf');
    writeFileSync(conf, [`port ${port}`, 'bind 127.0.0.1', 'save ""', 'appendonly no', 'repl-diskless-sync-delay 0', `dir ${d}`, ...(replicaOf ? [`replicaof 127.0.0.1 ${replicaOf}`] : [])].join('\n') + '\n');
    return [conf, ...(opts.serverArgs ?? [])];
  };
  const sentinelArgs = (port: number): string[] => {
    const d = join(dir, `sentinel-${port}`);
    mkdirSync(d, { recursive: true });
    const conf = join(d, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${d}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${masterPort} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} ${opts.downAfterMs ?? 1000}`,
        `sentinel failover-timeout ${MASTER_NAME} ${opts.failoverTimeoutMs ?? 3000}`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
      ].join('\n') + '\n',
    );
    return [conf, '--sentinel'];
  };
  const launch = async (port: number, args: string[], name: string): Promise<void> => {
    if (procs.get(port)?.running) return;
    procs.set(port, await spawnRedisServer(args, name, () => plainPing(port)));
  };

  const reportedMasterPort = async (): Promise<number | undefined> => {
    const seen = new Set<string>();
    for (const p of sentinelPorts) {
      const r = (await tryNodeCommand(p, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME])) as string[] | undefined;
      seen.add(r ? String(r[1]) : '?');
    }
    const [only] = [...seen];
    return seen.size === 1 && only !== '?' ? Number(only) : undefined;
  };
  /** each sentinel knows the replica and the 2 other sentinels (needed to agree on a failover) */
  const waitForDiscovery = async (replica: number): Promise<void> => {
    await waitUntil('sentinels to discover the replica and each other', 30_000, async () => {
      for (const p of sentinelPorts) {
        const replicas = (await nodeCommand(p, ['SENTINEL', 'REPLICAS', MASTER_NAME])) as string[][];
        const okReplica = replicas.some((r) => {
          const f = fields(r);
          return f.port === String(replica) && !/s_down|o_down|disconnected/.test(f.flags ?? '') && f['master-link-status'] === 'ok';
        });
        const sentinels = (await nodeCommand(p, ['SENTINEL', 'SENTINELS', MASTER_NAME])) as string[][];
        if (!okReplica || sentinels.length < sentinelPorts.length - 1) return false;
      }
      return true;
    }, 100);
  };
  const waitForPromotion = async (newMaster: number): Promise<void> => {
    await waitUntil(`sentinels to report ${newMaster} as master`, 30_000, async () => {
      if ((await reportedMasterPort()) !== newMaster) return false;
      const role = (await nodeCommand(newMaster, ['ROLE'])) as unknown[];
      return role[0] === 'master';
    }, 100);
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    await Promise.all([...procs.values()].filter((p) => p.running).map((p) => p.stop(5000)));
    unregisterDir();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await launch(masterPort, serverArgs(masterPort), `redis-server master :${masterPort}`);
    await launch(replicaPort, serverArgs(replicaPort, masterPort), `redis-server replica :${replicaPort}`);
    await Promise.all(sentinelPorts.map((p) => launch(p, sentinelArgs(p), `redis-sentinel :${p}`)));
    await waitUntil('the replica to sync', 15_000, async () => parseInfo(await nodeCommand(replicaPort, ['INFO', 'replication'])).master_link_status === 'up', 50);
    await waitForDiscovery(replicaPort);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    masterName: MASTER_NAME,
    sentinelUrls: sentinelPorts.map((p) => `redis://127.0.0.1:${p}`),
    get master() {
      return { port: current.master, url: `redis://127.0.0.1:${current.master}` };
    },
    get replica() {
      return { port: current.replica, url: `redis://127.0.0.1:${current.replica}` };
    },
    async failover() {
      const { master, replica } = current;
      // SENTINEL FAILOVER answers -INPROG / -NOGOODSLAVE while a previous one settles: retry
      await waitUntil('SENTINEL FAILOVER to be accepted', 15_000, async () => (await nodeCommand(sentinelPorts[0]!, ['SENTINEL', 'FAILOVER', MASTER_NAME])) === 'OK', 200);
      await waitForPromotion(replica);
      current = { master: replica, replica: master };
      // the sentinels would demote the old master only after ~10 s; do what they would do now
      await nodeCommand(master, ['REPLICAOF', '127.0.0.1', replica]);
      await waitUntil(`${master} to replicate from ${replica}`, 30_000, async () => {
        const info = parseInfo(await nodeCommand(master, ['INFO', 'replication']));
        return info.role === 'slave' && info.master_port === String(replica) && info.master_link_status === 'up';
      }, 100);
    },
    async killMaster(kopts = {}) {
      const { master, replica } = current;
      await procs.get(master)?.kill('SIGKILL');
      if (kopts.waitForFailover === false) return;
      await waitForPromotion(replica);
      current = { master: replica, replica: master };
    },
    async startServer(port) {
      if (stopped) throw new Error('startServer() after stop()');
      if (port !== masterPort && port !== replicaPort) throw new Error(`${port} is not a data server of this setup`);
      // started as a replica of the current master: the sentinels would demote it anyway
      const other = port === current.master ? current.replica : current.master;
      await launch(port, serverArgs(port, other), `redis-server :${port}`);
    },
    reportedMasterPort,
    stop,
  };
}

function fields(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
}
