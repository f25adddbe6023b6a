import type { Redis } from 'ioredis';
import { Cluster } from 'ioredis';
import type { RedisConnectionConfig, SinkConfig } from '../config/schema.js';
import type { Finding } from '../util/findings.js';
import { connectRedis, createRedisClient, describeRedis, explainRedisError, redisUsername, trackLastError, usesTls, type RedisClient } from './connect.js';
import { errorMessage } from '../util/errors.js';
import { ACL_CHECK_KEY, SLUICE_KEY_PATTERN, sinkOwnedElsewhere, sinkOwnerKey } from '../core/keyspace.js';

/**
 * Every command Sluice sends, with arguments that name `sluice:*` keys / channels, for the ACL
 * check. MULTI and EXEC are checked separately (they cannot be queued inside a MULTI).
 */
const KEY = ACL_CHECK_KEY;
export const SLUICE_COMMANDS: readonly (readonly string[])[] = [
  ['GET', KEY],
  ['SET', KEY, 'v'],
  ['DEL', KEY],
  ['UNLINK', KEY],
  ['SCAN', '0', 'MATCH', SLUICE_KEY_PATTERN],
  ['HSET', KEY, 'f', 'v'],
  ['HDEL', KEY, 'f'],
  ['RPUSH', KEY, 'v'],
  ['LPUSH', KEY, 'v'],
  ['LTRIM', KEY, '0', '-1'],
  ['SADD', KEY, 'm'],
  ['SREM', KEY, 'm'],
  ['ZADD', KEY, '1', 'm'],
  ['ZREM', KEY, 'm'],
  ['XADD', KEY, '*', 'f', 'v'],
  ['PUBLISH', KEY, 'm'],
  ['PEXPIRE', KEY, '1000'],
  ['EVAL', 'return 1', '1', KEY],
  ['MGET', KEY],
  ['INFO'],
  ['PING'],
];

/**
 * Commands only some sinks send, checked only when such a sink writes to the connection (a user
 * whose ACL allows what its sinks need is not asked for more).
 */
export function sinkOnlyCommands(sinks: readonly SinkConfig[]): string[][] {
  const out = new Map<string, string[]>();
  for (const s of sinks) {
    if (s.type === 'geo') out.set('GEOADD', ['GEOADD', KEY, '0', '0', 'm']);
    else if (s.type === 'hyperloglog') out.set('PFADD', ['PFADD', KEY, 'e']);
    else if (s.type === 'bitmap') out.set('SETBIT', ['SETBIT', KEY, '0', '1']);
    else if (s.type === 'aggregate') {
      // what its scripts call besides the commands every sink sends (ACLs apply inside scripts)
      for (const cmd of [['HGET', KEY, 'f'], ['EXISTS', KEY], ['ZSCORE', KEY, 'm'], ['HKEYS', KEY]]) out.set(cmd[0]!, cmd);
    }
    else if (s.type === 'stream' && s.max_age_ms !== undefined && s.max_length !== undefined) out.set('XTRIM', ['XTRIM', KEY, 'MINID', '~', '0']);
  }
  return [...out.values()];
}

interface AclGaps {
  /** lowercase command names the user may not run */
  commands: Set<string>;
  /** the user may not access sluice:* keys */
  keys: boolean;
  /** the user may not publish to sluice:* channels */
  channels: boolean;
  /** a command that could not be checked, and why */
  unchecked?: string;
}

const noGaps = (): AclGaps => ({ commands: new Set(), keys: false, channels: false });

function classifyDenial(text: string, command: string, gaps: AclGaps): void {
  if (/no permissions to run/i.test(text)) gaps.commands.add(command.toLowerCase());
  else if (/no permissions to access .*key/i.test(text)) gaps.keys = true;
  else if (/no permissions to access .*channel/i.test(text)) gaps.channels = true;
  else gaps.commands.add(command.toLowerCase());
}

/** ACL DRYRUN (Redis 7+): needs permission to run ACL; undefined when that is not allowed. */
async function gapsByDryRun(node: Redis, user: string, commands: readonly (readonly string[])[]): Promise<AclGaps | undefined> {
  const gaps = noGaps();
  for (const cmd of [['MULTI'], ['EXEC'], ...commands]) {
    let reply: unknown;
    try {
      reply = await node.call('ACL', 'DRYRUN', user, ...cmd);
    } catch (err) {
      const msg = errorMessage(err);
      // NOPERM for ACL itself, or an older Redis without DRYRUN: use the other method
      if (/NOPERM|unknown subcommand|syntax error/i.test(msg)) return undefined;
      throw err;
    }
    if (String(reply) !== 'OK') classifyDenial(String(reply), cmd[0]!, gaps);
  }
  return gaps;
}

/**
 * Queues every command inside a MULTI and DISCARDs it: Redis checks ACLs when queuing, so each
 * reply is QUEUED or NOPERM, and nothing runs. Works for any user allowed MULTI and DISCARD.
 */
async function gapsByQueuedProbe(node: Redis, commands: readonly (readonly string[])[]): Promise<AclGaps> {
  const gaps = noGaps();
  const probe = node.duplicate({ lazyConnect: true, enableOfflineQueue: true, retryStrategy: () => null, connectionName: 'sluice-check-acl' });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    // EXEC outside a transaction: NOPERM if denied, else "EXEC without MULTI"; nothing runs
    try {
      await probe.call('EXEC');
    } catch (err) {
      if (/NOPERM/.test(errorMessage(err))) gaps.commands.add('exec');
    }
    try {
      await probe.call('MULTI');
    } catch (err) {
      if (!/NOPERM/.test(errorMessage(err))) throw err;
      gaps.commands.add('multi');
      gaps.unchecked = 'the other commands could not be checked without MULTI';
      return gaps;
    }
    try {
      for (const [name, ...args] of commands) {
        try {
          await probe.call(name!, ...args);
        } catch (err) {
          const msg = errorMessage(err);
          if (/NOPERM/.test(msg)) classifyDenial(msg, name!, gaps);
        }
      }
    } finally {
      await probe.call('DISCARD').catch(() => undefined);
    }
    return gaps;
  } finally {
    probe.disconnect();
  }
}

async function aclGaps(node: Redis, user: string | undefined, commands: readonly (readonly string[])[]): Promise<AclGaps> {
  let name = user;
  if (name === undefined) {
    name = await Promise.resolve(node.call('ACL', 'WHOAMI')).then(String, () => undefined);
  }
  if (name !== undefined) {
    const viaDryRun = await gapsByDryRun(node, name, commands);
    if (viaDryRun) return viaDryRun;
  }
  return gapsByQueuedProbe(node, commands);
}

function mergeGaps(all: AclGaps[]): AclGaps {
  const out = noGaps();
  for (const g of all) {
    for (const c of g.commands) out.commands.add(c);
    out.keys ||= g.keys;
    out.channels ||= g.channels;
    out.unchecked ??= g.unchecked;
  }
  return out;
}

/** the one-line ACL finding (undefined: nothing to say) */
function aclFinding(name: string, spec: RedisConnectionConfig, user: string | undefined, gaps: AclGaps): Finding | undefined {
  const who = `ACL user "${user ?? 'default'}"`;
  const missing = [...gaps.commands].sort();
  if (missing.length === 0 && !gaps.keys && !gaps.channels) {
    return user !== undefined ? { severity: 'ok', message: `redis.${name}: ${who} may run every command Sluice uses on sluice:* keys` } : undefined;
  }
  const parts: string[] = [];
  if (missing.length > 0) parts.push(`may not run ${missing.map((c) => c.toUpperCase()).join(', ')}`);
  if (gaps.keys) parts.push('may not access keys sluice:*');
  if (gaps.channels) parts.push('may not publish to channels sluice:*');
  const grant = [...missing.map((c) => `+${c}`), '~sluice:*', ...(gaps.channels || missing.includes('publish') ? ['&sluice:*'] : [])].join(' ');
  const where = spec.kind === 'cluster' ? ' on every node (ACLs are per node)' : '';
  const unchecked = gaps.unchecked ? ` (${gaps.unchecked})` : '';
  return {
    severity: 'error',
    message: `redis.${name}: ${who} ${parts.join('; ')}${unchecked}: run ACL SETUSER ${user ?? 'default'} ${grant}${where} (keys of other key templates need their own ~pattern)`,
  };
}

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** "standalone", "cluster: ..." or "sentinel: master ... at host:port", plus findings */
async function modeOf(client: RedisClient, spec: RedisConnectionConfig, serverMode: string, name: string, out: Finding[]): Promise<string> {
  if (client instanceof Cluster) {
    const info = parseInfo(String(await client.cluster('INFO')));
    const masters = client.nodes('master').length;
    const assigned = Number(info.cluster_slots_assigned ?? 0);
    const ok = Number(info.cluster_slots_ok ?? 0);
    if (info.cluster_state !== 'ok') {
      out.push({ severity: 'error', message: `redis.${name}: cluster_state is ${info.cluster_state ?? '?'} (slots assigned ${assigned}, ok ${ok}, failing ${info.cluster_slots_fail ?? '?'}): writes to the uncovered slots fail until the cluster is repaired (redis-cli --cluster check / fix)` });
    } else if (assigned < 16384 || ok < 16384) {
      out.push({ severity: 'error', message: `redis.${name}: only ${Math.min(assigned, ok)} of 16384 hash slots are covered: keys in the others cannot be written (redis-cli --cluster fix)` });
    }
    const slots = assigned === 16384 && ok === 16384 ? 'all 16384 slots covered' : `${Math.min(assigned, ok)}/16384 slots covered`;
    return `cluster: ${masters} master(s), cluster_state ${info.cluster_state ?? '?'}, ${slots}`;
  }
  if (spec.kind === 'sentinel') {
    const stream = (client as unknown as { stream?: { remoteAddress?: string; remotePort?: number } }).stream;
    const at = stream?.remoteAddress ? `${stream.remoteAddress}:${stream.remotePort}` : '?';
    return `sentinel: master "${spec.sentinel.name}" at ${at}`;
  }
  if (serverMode === 'cluster') {
    out.push({ severity: 'error', message: `redis.${name}: the server is a Redis Cluster node: configure the connection as cluster: [${spec.kind === 'url' ? 'redis://host:port, ...' : '...'}] so that keys go to the node that owns their slot` });
  }
  return serverMode === '?' ? 'standalone' : serverMode;
}

/**
 * Whether the database a standalone or Sentinel connection selects exists. ioredis sends `SELECT
 * <db>` when it connects, but when the server answers "ERR DB index is out of range" it goes on
 * with database 0, where every write would then land: so this is checked before a lane writes.
 * The number of databases is read with `CONFIG GET databases`; where CONFIG is not allowed, `SELECT`
 * itself says whether the database exists. null: it exists (or the connection is a Cluster, which
 * has database 0 only). The same sentence serves `sluice check` and `sluice start`.
 */
export async function databaseFinding(name: string, client: RedisClient): Promise<Finding | null> {
  if (client instanceof Cluster) return null;
  const db = Number(client.options.db ?? 0);
  const where = (client.options.sentinels?.length ?? 0) > 0 ? `set redis.${name}.db` : `put it in the URL path (redis://host:port/N)`;
  let count: number | null = null;
  let configError: string | null = null;
  try {
    const reply = (await client.config('GET', 'databases')) as string[];
    const n = Number(reply[1]);
    if (Number.isInteger(n) && n > 0) count = n;
    else configError = 'CONFIG GET databases gave no number';
  } catch (err) {
    configError = errorMessage(err);
  }
  if (count !== null) {
    if (db < count) return null;
    return { severity: 'error', message: `redis.${name}: database ${db} does not exist: the server has ${count} (its "databases" setting), numbered 0 to ${count - 1}: use one of those (${where}), or raise databases in the server's configuration` };
  }
  try {
    await client.select(db);
    return null;
  } catch (err) {
    const msg = errorMessage(err);
    if (/out of range|invalid DB index/i.test(msg)) {
      return { severity: 'error', message: `redis.${name}: database ${db} does not exist on the server (SELECT ${db}: ${msg}): use a smaller number (${where}), or raise databases in the server's configuration` };
    }
    return { severity: 'warn', message: `redis.${name}: could not check that database ${db} exists (CONFIG GET databases: ${configError}; SELECT ${db}: ${msg})` };
  }
}

/**
 * `sluice check` for one Redis connection: reachability, TLS and auth (errors in plain words),
 * version, mode (standalone; cluster state and slot coverage; the master a sentinel setup
 * points to), eviction policy, and whether the ACL user may run every command Sluice uses.
 */
/**
 * What the connection's Redis version cannot do for its sinks: Sluice needs Redis 6 (RESP
 * transactions with per-command errors, ACL users); a stream sink with `max_age_ms` trims with
 * `MINID`, which Redis added in 6.2. An unknown version (INFO denied) finds nothing.
 */
export function versionFindings(name: string, version: string, sinks: readonly SinkConfig[]): Finding[] {
  const m = /^(\d+)\.(\d+)/.exec(version);
  if (!m) return [];
  const v = Number(m[1]) * 100 + Number(m[2]);
  if (v < 600) return [{ severity: 'error', message: `redis.${name}: Redis ${version} is too old: Sluice needs Redis 6.0 or newer` }];
  const trimmed = sinks.filter((s) => s.type === 'stream' && s.max_age_ms !== undefined).map((s) => s.name);
  if (v < 602 && trimmed.length > 0) {
    return [{ severity: 'error', message: `redis.${name}: Redis ${version} has no XADD/XTRIM MINID, which max_age_ms needs (Redis 6.2 or newer): sink(s) ${trimmed.join(', ')}` }];
  }
  return [];
}

/**
 * `sinkCommands`: commands beyond SLUICE_COMMANDS that the connection's sinks send (sinkOnlyCommands);
 * `sinks`: the sinks writing to it, for the version check.
 */
/**
 * Connects to one configured Redis and reports what Sluice needs of it. `instance`: this
 * instance's identity, to report sink names another instance owns there (null: unknown, not
 * checked).
 */
export async function checkRedisConnection(name: string, spec: RedisConnectionConfig, used: boolean, sinkCommands: readonly (readonly string[])[] = [], sinks: readonly SinkConfig[] = [], instance: string | null = null): Promise<Finding[]> {
  const out: Finding[] = [];
  const where = describeRedis(spec);
  const tls = usesTls(spec);
  if (tls && spec.tls?.insecure) {
    out.push({ severity: 'warn', message: `redis.${name}: tls.insecure is true: the server's certificate is not verified (anyone on the network path can impersonate it); use only for testing` });
  }
  let client: RedisClient;
  try {
    // the insecure warning is reported above, as a finding
    client = createRedisClient(spec, 'sluice-check', { warn: () => undefined });
  } catch (err) {
    out.push({ severity: 'error', message: `redis.${name}: ${errorMessage(err)}` });
    return out;
  }
  const lastError = trackLastError(client);
  client.on('error', () => undefined);
  try {
    try {
      // a sentinel setup retries forever: one failed round over all sentinels is enough here
      let onError: (err: Error) => void = () => undefined;
      const sentinelsFailed = new Promise<never>((_r, reject) => {
        onError = (err) => {
          if (/All sentinels are unreachable/.test(err.message)) reject(new Error(err.message.replace(/ Retrying from scratch after \d+ms\./, '').trim()));
        };
      });
      sentinelsFailed.catch(() => undefined);
      client.on('error', onError);
      await withTimeout(Promise.race([connectRedis(client), sentinelsFailed]), 6000, () => lastError() ?? new Error('timed out after 6 s')).finally(() => client.off('error', onError));
      // NOPERM still proves the login worked; the ACL check below reports what is missing
      await client.ping().catch((err: unknown) => {
        if (!/NOPERM/.test(errorMessage(err))) throw err;
      });
    } catch (err) {
      out.push({ severity: 'error', message: `redis.${name}: cannot use Redis at ${where}: ${explainRedisError(err, spec)}` });
      return out;
    }
    const dbFinding = await databaseFinding(name, client).catch((err: unknown): Finding => ({ severity: 'warn', message: `redis.${name}: could not check the database number: ${errorMessage(err)}` }));
    if (dbFinding) out.push(dbFinding);
    let version = '?';
    let serverMode = '?';
    try {
      const info = parseInfo(String(await client.info('server')));
      version = info.redis_version ?? '?';
      serverMode = info.redis_mode ?? '?';
    } catch {
      // INFO may be denied: the ACL check below says so
    }
    const user = redisUsername(spec);
    const mode = await modeOf(client, spec, serverMode, name, out).catch((err: unknown) => `${serverMode} (${errorMessage(err)})`);
    const extras = [tls ? 'TLS' : undefined, user !== undefined ? `user "${user}"` : undefined].filter(Boolean).join(', ');
    out.unshift({ severity: 'ok', message: `redis.${name}: reachable at ${where} (Redis ${version}, ${mode}${extras ? `; ${extras}` : ''})${used ? '' : ', not used by any sink'}` });
    out.push(...versionFindings(name, version, sinks));
    try {
      const policy = (await client.config('GET', 'maxmemory-policy')) as string[];
      if (policy[1]?.startsWith('allkeys-')) {
        out.push({ severity: 'warn', message: `redis.${name}: maxmemory-policy is ${policy[1]}: Redis may evict Sluice's position keys and data; use noeviction or volatile-* (Sluice notices lost positions and re-applies, but evicted data is served stale until then)` });
      }
    } catch {
      // CONFIG may be renamed or forbidden for this user: not a problem for Sluice itself
    }
    try {
      const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
      const commands = [...SLUICE_COMMANDS, ...sinkCommands];
      const gaps = mergeGaps(await Promise.all(nodes.map((n) => aclGaps(n, user, commands))));
      const f = aclFinding(name, spec, user, gaps);
      if (f) out.push(f);
    } catch (err) {
      out.push({ severity: 'warn', message: `redis.${name}: could not check the ACL permissions: ${errorMessage(err)}` });
    }
    if (instance !== null) out.push(...(await ownerFindings(client, name, sinks, instance)));
  } finally {
    client.disconnect();
  }
  return out;
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_r, reject) => (t = setTimeout(() => reject(onTimeout()), ms)))]).finally(() => clearTimeout(t));
}

/** Sinks whose name another instance owns on this Redis (runtime/sink-owners.ts): `sluice start` would refuse them. */
async function ownerFindings(client: RedisClient, name: string, sinks: readonly SinkConfig[], instance: string): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const s of sinks) {
    const owner = await client.get(sinkOwnerKey(s.name)).catch(() => null);
    if (owner !== null && owner !== instance) out.push({ severity: 'error', message: `sinks: ${sinkOwnedElsewhere(s.name, name, owner, instance)}` });
  }
  return out;
}
