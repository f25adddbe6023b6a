// A throwaway Redis Cluster for the integration tests: N masters (default 3), optionally one
// replica each, from the redis-server / redis-cli on PATH, on free ports of 127.0.0.1 (client
// and cluster-bus ports both picked free, set with --cluster-port), in one temp dir.
// Never touches the system Redis.

import { execFile } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cluster } from 'ioredis';
import type { ClusterOptions } from 'ioredis';
import { freePort } from '../../src/util/free-port.js';
import { onProcessExit } from '../../src/util/process.js';
import type { ManagedProcess } from '../../src/util/process.js';
import { nodeCommand, parseInfo, plainPing, spawnRedisServer, tryNodeCommand, waitUntil } from './redis-node.js';

export type ClusterRole = 'master' | 'replica';

export interface ClusterNodeInfo {
  port: number;
  /** redis://127.0.0.1:PORT */
  url: string;
  /** as last seen by the harness (refreshed after failover(), killNode(), startNode()) */
  role: ClusterRole;
}

export interface TestRedisCluster {
  /** all nodes, masters first at startup; roles change with failovers */
  readonly nodes: readonly ClusterNodeInfo[];
  /** the masters' URLs at startup */
  readonly seedUrls: string[];
  /** a new ioredis Cluster client (disconnected by stop()) */
  client(opts?: ClusterOptions): Cluster;
  /** SIGKILLs a node and waits until it is gone */
  killNode(port: number): Promise<void>;
  /** starts a killed node again (same nodes.conf: it rejoins; data is not kept) */
  startNode(port: number): Promise<void>;
  /**
   * CLUSTER FAILOVER on a replica of `masterPort` (FORCE when that master is down); waits
   * until the replica is a master and every running node reports cluster_state:ok.
   * Resolves with the promoted replica's port.
   */
  failover(masterPort: number): Promise<number>;
  /** moves `slots` hash slots (with their keys) from one master to another, live */
  reshard(fromPort: number, toPort: number, slots: number): Promise<void>;
  /** the node's id, role, master id and slot ranges, from CLUSTER NODES seen by a running node */
  topology(): Promise<ClusterNodeState[]>;
  /** waits until every running node reports cluster_state:ok and agrees on slot owners */
  waitForOk(timeoutMs?: number): Promise<void>;
  /** stops all nodes and clients, removes the temp dir; idempotent */
  stop(): Promise<void>;
}

export interface ClusterNodeState {
  id: string;
  port: number;
  role: ClusterRole;
  masterId: string | null;
  failed: boolean;
  /** [first, last] ranges */
  slots: [number, number][];
}

export interface StartRedisClusterOptions {
  /** default 3 (the minimum Redis accepts) */
  masters?: number;
  /** 0 (default) or 1 */
  replicasPerMaster?: number;
  /** cluster-node-timeout; default 2000 ms (small: failures are detected quickly) */
  nodeTimeoutMs?: number;
  /** extra redis-server arguments for every node */
  args?: string[];
}

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

export function parseClusterNodes(text: string): ClusterNodeState[] {
  const out: ClusterNodeState[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    if (f.length < 8) continue;
    const [id, addr, flags, master] = f;
    const port = Number(/:(\d+)@/.exec(addr!)?.[1] ?? /:(\d+)/.exec(addr!)?.[1]);
    const flagSet = new Set(flags!.split(','));
    const slots: [number, number][] = [];
    for (const s of f.slice(8)) {
      if (s.startsWith('[')) continue; // migrating/importing markers
      const [a, b] = s.split('-');
      slots.push([Number(a), Number(b ?? a)]);
    }
    out.push({
      id: id!,
      port,
      role: flagSet.has('master') ? 'master' : 'replica',
      masterId: master === '-' ? null : master!,
      failed: flagSet.has('fail') || flagSet.has('noaddr'),
      slots,
    });
  }
  return out.sort((a, b) => a.port - b.port);
}

export async function startRedisCluster(opts: StartRedisClusterOptions = {}): Promise<TestRedisCluster> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicasPerMaster ?? 0;
  if (masters < 3) throw new Error('a Redis Cluster needs at least 3 masters');
  const total = masters * (1 + replicas);
  const dir = await mkdtemp(join(tmpdir(), 'sluice-cluster-'));
  const unregisterDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  const ports: number[] = [];
  const busPorts = new Map<number, number>();
  for (let i = 0; i < total; i++) {
    const p = await freePort();
    ports.push(p);
    busPorts.set(p, await freePort());
  }
  const procs = new Map<number, ManagedProcess>();
  const clients = new Set<Cluster>();
  const infos: ClusterNodeInfo[] = ports.map((port, i) => ({ port, url: `redis://127.0.0.1:${port}`, role: i < masters ? 'master' : 'replica' }));
  let stopped = false;

  const argsFor = (port: number): string[] => {
    const nodeDir = join(dir, String(port));
    mkdirSync(nodeDir, { recursive: true });
    return [
      '--port', String(port),
      '--cluster-port', String(busPorts.get(port)),
      '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes',
      '--cluster-config-file', join(nodeDir, 'nodes.conf'),
      '--cluster-node-timeout', String(opts.nodeTimeoutMs ?? 2000),
      '--save', '',
      '--appendonly', 'no',
      '--dir', nodeDir,
      '--daemonize', 'no',
      ...(opts.args ?? []),
    ];
  };
  const launch = async (port: number): Promise<void> => {
    if (procs.get(port)?.running) return;
    procs.set(port, await spawnRedisServer(argsFor(port), `redis-server cluster :${port}`, () => plainPing(port)));
  };
  const running = (): number[] => ports.filter((p) => procs.get(p)?.running);

  const topology = async (): Promise<ClusterNodeState[]> => {
    for (const p of running()) {
      const text = await tryNodeCommand(p, ['CLUSTER', 'NODES']);
      if (typeof text === 'string') return parseClusterNodes(text);
    }
    throw new Error('no cluster node is running');
  };
  const refreshRoles = async (): Promise<void> => {
    const t = await topology();
    for (const info of infos) {
      const n = t.find((x) => x.port === info.port);
      if (n) info.role = n.role;
    }
  };
  /** every running node: cluster_state ok, and all see the same owner for every slot */
  const waitForOk = async (timeoutMs = 30_000): Promise<void> => {
    await waitUntil('cluster_state:ok on every node', timeoutMs, async () => {
      const views: string[] = [];
      for (const p of running()) {
        const info = parseInfo(await nodeCommand(p, ['CLUSTER', 'INFO']));
        if (info.cluster_state !== 'ok' || info.cluster_slots_ok !== '16384') return false;
        const nodes = parseClusterNodes(String(await nodeCommand(p, ['CLUSTER', 'NODES'])));
        views.push(
          nodes
            .filter((n) => n.role === 'master' && n.slots.length > 0)
            .map((n) => `${n.port}:${n.slots.map((s) => s.join('-')).join(',')}`)
            .join(' '),
        );
      }
      return views.length > 0 && views.every((v) => v === views[0]);
    }, 100);
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    for (const c of clients) c.disconnect();
    clients.clear();
    await Promise.all([...procs.values()].filter((p) => p.running).map((p) => p.stop(5000)));
    unregisterDir();
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await Promise.all(ports.map(launch));
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes']);
    await waitForOk();
    if (replicas > 0) {
      // replicas must have synced before a failover can promote them
      await waitUntil('replicas in sync', 30_000, async () => {
        for (const p of ports.slice(masters)) {
          const info = parseInfo(await nodeCommand(p, ['INFO', 'replication']));
          if (info.master_link_status !== 'up') return false;
        }
        return true;
      }, 100);
    }
    await refreshRoles();
  } catch (err) {
    await stop();
    throw err;
  }

  const self: TestRedisCluster = {
    get nodes() {
      return infos;
    },
    seedUrls: infos.filter((n) => n.role === 'master').map((n) => n.url),
    client(copts: ClusterOptions = {}) {
      if (stopped) throw new Error('client() after stop()');
      const c = new Cluster(
        ports.slice(0, masters).map((port) => ({ host: '127.0.0.1', port })),
        { lazyConnect: false, ...copts },
      );
      c.on('error', () => {});
      clients.add(c);
      c.once('end', () => clients.delete(c));
      return c;
    },
    async killNode(port) {
      const p = procs.get(port);
      if (!p) throw new Error(`no cluster node on port ${port}`);
      if (p.running) await p.kill('SIGKILL');
    },
    async startNode(port) {
      if (stopped) throw new Error('startNode() after stop()');
      if (!procs.has(port)) throw new Error(`no cluster node on port ${port}`);
      await launch(port);
      await waitForOk();
      await refreshRoles();
    },
    async failover(masterPort) {
      const t = await topology();
      const master = t.find((n) => n.port === masterPort);
      if (!master || master.role !== 'master') throw new Error(`${masterPort} is not a master`);
      const replica = t.find((n) => n.masterId === master.id && procs.get(n.port)?.running);
      if (!replica) throw new Error(`master ${masterPort} has no running replica`);
      const masterUp = procs.get(masterPort)?.running ?? false;
      await nodeCommand(replica.port, masterUp ? ['CLUSTER', 'FAILOVER'] : ['CLUSTER', 'FAILOVER', 'FORCE']);
      await waitUntil(`replica ${replica.port} promoted`, 30_000, async () => {
        const role = (await nodeCommand(replica.port, ['ROLE'])) as unknown[];
        return role[0] === 'master';
      }, 50);
      await waitForOk();
      if (masterUp) {
        // the old master becomes a replica of the promoted one
        await waitUntil(`${masterPort} following ${replica.port}`, 30_000, async () => {
          const info = parseInfo(await nodeCommand(masterPort, ['INFO', 'replication']));
          return info.role === 'slave' && info.master_port === String(replica.port) && info.master_link_status === 'up';
        }, 100);
      }
      await refreshRoles();
      return replica.port;
    },
    async reshard(fromPort, toPort, slots) {
      const t = await topology();
      const from = t.find((n) => n.port === fromPort);
      const to = t.find((n) => n.port === toPort);
      if (from?.role !== 'master' || to?.role !== 'master') throw new Error(`reshard: ${fromPort} and ${toPort} must both be masters`);
      await run('redis-cli', [
        '--cluster', 'reshard', `127.0.0.1:${fromPort}`,
        '--cluster-from', from.id,
        '--cluster-to', to.id,
        '--cluster-slots', String(slots),
        '--cluster-yes',
        '--cluster-pipeline', '100',
      ]);
      await waitForOk();
    },
    topology,
    waitForOk,
    stop,
  };
  return self;
}
