import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Redis, Cluster, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisConnectionConfig, TlsConfig } from '../config/schema.js';
import { SluiceError, errorMessage } from '../util/errors.js';
import { CERT_VERIFY_ERROR_CODES } from '../util/tls-errors.js';

export type RedisClient = Redis | Cluster;

export type RedisConnectionSpec = RedisConnectionConfig;

/** The part of a pino logger used here (a pino Logger fits). */
export interface RedisConnectLogger {
  warn(obj: object, msg: string): void;
}

/**
 * Options every connection gets. No hidden retries: a MULTI that ioredis re-sent by itself
 * after a reconnect could apply a transaction twice. The apply lane retries, after reading the
 * stored positions back, so a retry never duplicates anything.
 */
const SAFE_OPTIONS: RedisOptions = {
  maxRetriesPerRequest: 0,
  enableOfflineQueue: false,
  autoResendUnfulfilledCommands: false,
  lazyConnect: true,
  connectTimeout: 5000,
  // disconnect() waits this long for a stream that is already closed (ioredis): keep it short
  disconnectTimeout: 300,
  retryStrategy: (times) => Math.min(200 * times, 2000),
};

/**
 * Cluster-level options. MOVED / ASK / TRYAGAIN / CLUSTERDOWN replies mean the command did not
 * run, so following them is safe. `retryDelayOnFailover` is 0 on purpose: ioredis would
 * otherwise re-send a command whose node connection closed while it was in flight, and such a
 * command (a MULTI/EXEC) may well have run. The apply lane retries that case itself.
 */
const CLUSTER_OPTIONS: ClusterOptions = {
  enableOfflineQueue: false,
  lazyConnect: true,
  scaleReads: 'master',
  maxRedirections: 16,
  retryDelayOnMoved: 0,
  retryDelayOnTryAgain: 100,
  retryDelayOnClusterDown: 200,
  retryDelayOnFailover: 0,
  slotsRefreshTimeout: 2000,
  clusterRetryStrategy: (times) => Math.min(200 * times, 2000),
};

/** host:port of a redis:// URL, never its credentials */
function hostOf(u: string, defaultPort = 6379): string {
  try {
    const p = new URL(u);
    return `${p.hostname}:${p.port || defaultPort}`;
  } catch {
    return '?';
  }
}

/** Where a connection goes, for messages: host:port (no credentials), cluster seeds, sentinels. */
export function describeRedis(spec: RedisConnectionSpec): string {
  if (spec.kind === 'url') {
    let db = '';
    try {
      const n = new URL(spec.url).pathname.replace(/^\//, '');
      if (n !== '' && n !== '0') db = `/${n}`;
    } catch {
      // hostOf says '?'
    }
    return hostOf(spec.url) + db;
  }
  if (spec.kind === 'cluster') return `cluster ${spec.cluster.map((u) => hostOf(u)).join(',')}`;
  return `sentinel ${spec.sentinel.name}@${spec.sentinel.nodes.map((u) => hostOf(u, 26379)).join(',')}${spec.db ? ` db ${spec.db}` : ''}`;
}

function urlsOf(spec: RedisConnectionSpec): string[] {
  if (spec.kind === 'url') return [spec.url];
  if (spec.kind === 'cluster') return spec.cluster;
  return spec.sentinel.nodes;
}

/** true for rediss:// connections */
export function usesTls(spec: RedisConnectionSpec): boolean {
  return urlsOf(spec).some((u) => u.startsWith('rediss:'));
}

/** credentials carried by the first URL that has any */
function urlCredentials(urls: readonly string[]): { username?: string; password?: string } {
  for (const u of urls) {
    try {
      const p = new URL(u);
      if (p.username !== '' || p.password !== '') {
        return {
          ...(p.username !== '' ? { username: decodeURIComponent(p.username) } : {}),
          ...(p.password !== '' ? { password: decodeURIComponent(p.password) } : {}),
        };
      }
    } catch {
      // the schema validated the URLs
    }
  }
  return {};
}

/** The ACL user a connection logs in as (undefined: the default user). */
export function redisUsername(spec: RedisConnectionSpec): string | undefined {
  if (spec.kind === 'url') return urlCredentials([spec.url]).username;
  return spec.username ?? (spec.kind === 'cluster' ? urlCredentials(spec.cluster).username : undefined);
}

function readPem(field: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new SluiceError('REDIS_TLS_FILE', `cannot read tls.${field} (${path}): ${errorMessage(err)}`);
  }
}

/**
 * Node TLS options for a rediss:// connection. Without `ca` Node verifies against its
 * built-in (system) CAs; verification is only off with an explicit `insecure: true`.
 */
export function tlsOptions(tls: TlsConfig | undefined): ConnectionOptions {
  const o: ConnectionOptions = { rejectUnauthorized: !(tls?.insecure ?? false) };
  if (tls?.ca !== undefined) o.ca = readPem('ca', tls.ca);
  if (tls?.cert !== undefined) o.cert = readPem('cert', tls.cert);
  if (tls?.key !== undefined) o.key = readPem('key', tls.key);
  if (tls?.servername !== undefined) o.servername = tls.servername;
  return o;
}

const warnedInsecure = new Set<string>();

function warnInsecure(spec: RedisConnectionSpec, connectionName: string, log: RedisConnectLogger | undefined): void {
  const where = describeRedis(spec);
  const key = `${connectionName}\u0000${where}`;
  if (warnedInsecure.has(key)) return;
  warnedInsecure.add(key);
  const msg = `TLS certificate verification is OFF for Redis at ${where} (tls.insecure: true): anyone on the network path can impersonate the server; use only for testing`;
  if (log) log.warn({ redis: where }, msg);
  else process.stderr.write(`warn  ${msg}\n`);
}

/**
 * An ioredis client for a configured connection (lazy: connectRedis() connects it). Throws a
 * SluiceError when a TLS file cannot be read. `log` receives the tls.insecure warning (once per
 * connection and process); without it the warning goes to stderr.
 */
export function createRedisClient(spec: RedisConnectionSpec, connectionName = 'sluice', log?: RedisConnectLogger): RedisClient {
  const client = newClient(spec, connectionName, log);
  specs.set(client, spec);
  return client;
}

/** the spec each client was made from, to explain its connection errors */
const specs = new WeakMap<RedisClient, RedisConnectionSpec>();

/**
 * A failed connectRedis() of a client createRedisClient made, as one sentence naming the
 * connection and saying what to change (a TLS certificate refused, a wrong password, …).
 */
export function redisConnectError(client: RedisClient, name: string, err: unknown): Error {
  const spec = specs.get(client);
  if (spec === undefined || err instanceof SluiceError) return err instanceof Error ? err : new Error(String(err));
  return new SluiceError('redis_connect', `cannot connect to Redis "${name}" at ${describeRedis(spec)}: ${explainRedisError(err, spec)}`, { cause: err });
}

function newClient(spec: RedisConnectionSpec, connectionName: string, log: RedisConnectLogger | undefined): RedisClient {
  const tlsOn = usesTls(spec);
  const tls = tlsOn ? tlsOptions(spec.tls) : undefined;
  if (tlsOn && spec.tls?.insecure) warnInsecure(spec, connectionName, log);

  if (spec.kind === 'url') {
    // the URL's credentials and /db win over nothing here: they are the only source
    return new Redis(spec.url, { ...SAFE_OPTIONS, connectionName, ...(tls ? { tls } : {}) });
  }
  if (spec.kind === 'cluster') {
    const nodes = spec.cluster.map((u) => {
      const p = new URL(u);
      return { host: p.hostname, port: Number(p.port || 6379) };
    });
    const fromUrl = urlCredentials(spec.cluster);
    const username = spec.username ?? fromUrl.username;
    const password = spec.password ?? fromUrl.password;
    // per-node options: no retryStrategy/lazyConnect here, the Cluster manages its nodes
    const { retryStrategy: _r, lazyConnect: _l, ...nodeSafe } = SAFE_OPTIONS;
    const redisOptions: RedisOptions = {
      ...nodeSafe,
      connectionName,
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
      ...(tls ? { tls } : {}),
    };
    return new Cluster(nodes, { ...CLUSTER_OPTIONS, redisOptions });
  }
  const sentinels = spec.sentinel.nodes.map((u) => {
    const p = new URL(u);
    return { host: p.hostname, port: Number(p.port || 26379) };
  });
  const sentinelCreds = urlCredentials(spec.sentinel.nodes);
  return new Redis({
    ...SAFE_OPTIONS,
    sentinels,
    name: spec.sentinel.name,
    role: 'master',
    connectionName,
    db: spec.db ?? 0,
    ...(spec.username !== undefined ? { username: spec.username } : {}),
    ...(spec.password !== undefined ? { password: spec.password } : {}),
    ...(sentinelCreds.username !== undefined ? { sentinelUsername: sentinelCreds.username } : {}),
    ...(sentinelCreds.password !== undefined ? { sentinelPassword: sentinelCreds.password } : {}),
    // +switch-master from the sentinels: reconnect to the new master at once
    failoverDetector: true,
    sentinelRetryStrategy: (times: number) => Math.min(200 * times, 2000),
    ...(tls ? { tls, sentinelTLS: tls, enableTLSForSentinelMode: true } : {}),
  });
}

/** The underlying cause of a failed connect: ioredis hides it behind "Connection is closed." */
function rootCause(err: unknown, seen: Error | undefined): unknown {
  const last = (err as { lastNodeError?: unknown } | null)?.lastNodeError;
  if (last instanceof Error) return last;
  if (seen && err instanceof Error && /Connection is closed|Failed to refresh slots cache|None of startup nodes is available/.test(err.message)) return seen;
  return err ?? seen;
}

/**
 * Connects and waits until the client is ready (lazyConnect clients). Rejects with the real
 * cause (a TLS or auth error) rather than ioredis's "Connection is closed.".
 */
export async function connectRedis(client: RedisClient): Promise<void> {
  if (client.status === 'ready') return;
  let seen: Error | undefined;
  const onAnyError = (err: Error): void => {
    // the first TLS/auth error says most; later ones are usually "connection closed" echoes
    if (seen === undefined || /Connection is closed|ECONNRESET/.test(seen.message)) seen = err;
  };
  client.on('error', onAnyError);
  try {
    if (client.status === 'wait') {
      await client.connect().catch((err: unknown) => {
        throw rootCause(err, seen);
      });
      return;
    }
    await new Promise<void>((resolve, reject) => {
      const onReady = (): void => {
        client.off('error', onError);
        resolve();
      };
      const onError = (err: Error): void => {
        client.off('ready', onReady);
        reject(err);
      };
      client.once('ready', onReady);
      client.once('error', onError);
    });
  } finally {
    client.off('error', onAnyError);
  }
}

/**
 * Closes a client without waiting for a Redis that is down: QUIT when it is ready (what was
 * sent before is answered first), for at most `boundMs`, then disconnect(). The disconnect() is
 * needed even after a QUIT that worked: a Sentinel client's failover detector keeps two
 * connections to each sentinel, and ioredis closes them on disconnect() only
 * (redis/ioredis#1362); they would keep the process from exiting. A Cluster closes its nodes on
 * QUIT: it is only disconnected when QUIT did not finish.
 */
export async function closeRedisClient(client: RedisClient, boundMs = 2000): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const quit = client.quit().then(() => true, () => false);
  const bound = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), boundMs);
    timer.unref();
  });
  const quitted = await Promise.race([quit, bound]);
  clearTimeout(timer);
  if (!quitted || !(client instanceof Cluster)) client.disconnect();
}

/** the last error a client emitted (for timeouts: "timed out" alone says little) */
export function trackLastError(client: RedisClient): () => Error | undefined {
  let last: Error | undefined;
  client.on('error', (err: Error) => {
    if (last === undefined || !/Connection is closed/.test(err.message)) last = err;
  });
  return () => last;
}

/** OpenSSL's "80...:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:file:line:..." → its reason */
function plainSslMessage(msg: string): string {
  const m = /SSL routines:[^:]*:([^:]+):/.exec(msg);
  return (m ? m[1]! : msg).replace(/\s+/g, ' ').trim();
}

/**
 * A connection error in plain words, with what to change: TLS verification, host name,
 * missing client certificate, plain/TLS mismatch, wrong password, missing password.
 */
export function explainRedisError(err: unknown, spec: RedisConnectionSpec): string {
  const e = err as (Error & { code?: string }) | undefined;
  const code = e?.code ?? '';
  const msg = plainSslMessage(errorMessage(err));
  const tlsOn = usesTls(spec);
  const tls = spec.tls;
  if (code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    return `the server's certificate is self-signed: ${msg} — to trust it, set tls.ca to that certificate itself (or tls.insecure: true for testing)`;
  }
  if (CERT_VERIFY_ERROR_CODES.has(code)) {
    const fix = tls?.ca !== undefined
      ? `tls.ca (${tls.ca}) is not the CA that signed the server's certificate — set tls.ca to that CA, or tls.insecure: true for testing`
      : `set tls.ca to the CA that signed the server's certificate, or tls.insecure: true for testing`;
    return `certificate verification failed: ${msg} — ${fix}`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `certificate verification failed: ${msg} — the server needs a currently valid certificate (or tls.insecure: true for testing)`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `the server's certificate does not match the host name: ${msg} — connect with a name the certificate lists, or set tls.servername to one of them`;
  }
  if (tlsOn && (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/i.test(msg))) {
    return `the server does not speak TLS on this port (${msg}) — use redis:// instead of rediss://, or the server's TLS port`;
  }
  if (tlsOn && (/certificate required|alert handshake failure|ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED/i.test(msg + code) || code === 'ECONNRESET' || /socket disconnected before secure TLS/i.test(msg))) {
    if (tls?.cert === undefined && /certificate required/i.test(msg)) {
      return `the server requires a client certificate (${msg}) — set tls.cert and tls.key (mutual TLS)`;
    }
    if (tls?.cert === undefined) {
      return `the server closed the TLS connection during the handshake (${msg}) — it probably requires a client certificate: set tls.cert and tls.key (mutual TLS)`;
    }
    return `the server rejected the TLS handshake (${msg}) — check that tls.cert is signed by a CA the server trusts (its tls-ca-cert-file)`;
  }
  if (/^WRONGPASS/.test(msg)) {
    const user = redisUsername(spec);
    return `authentication failed${user ? ` for user "${user}"` : ''}: ${msg} — check the username and password`;
  }
  if (/^NOAUTH/.test(msg)) {
    return `${msg} — the server requires a password: ${spec.kind === 'url' ? 'put it in the URL (redis://user:password@host)' : 'set password (and username for an ACL user)'}`;
  }
  if (!tlsOn && /Connection is closed|ECONNRESET/.test(msg)) {
    return `${msg} (if the server expects TLS, use a rediss:// URL)`;
  }
  return msg;
}
