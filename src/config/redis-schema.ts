// The `redis:` section of sluice.yaml: named connections to a server (url), a Redis Cluster or
// a Sentinel group, and their TLS options.
import { z } from 'zod';
import { isRecord, nonEmptyString, parseUrl, strict } from './schema-helpers.js';

export const CONNECTION_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]*$/;

const redisUrl = () =>
  nonEmptyString().superRefine((s, ctx) => {
    const u = parseUrl(s);
    // the URL itself is not echoed back: it may hold a password
    if (u === undefined) {
      ctx.addIssue({ code: 'custom', message: 'is not a valid URL (expected redis://[user:password@]host[:port][/db] or rediss://...)' });
    } else if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
      ctx.addIssue({ code: 'custom', message: `must be a redis:// or rediss:// URL (got ${JSON.stringify(u.protocol + '//')})` });
    } else if (u.hostname === '') {
      ctx.addIssue({ code: 'custom', message: 'must name a host (redis://host:port)' });
    } else if (!/^\/?(\d+)?$/.test(u.pathname)) {
      ctx.addIssue({ code: 'custom', message: `the URL path must be a database number like /0 (got ${JSON.stringify(u.pathname)})` });
    }
  });

export const tlsSchema = strict({
  /** path to a PEM file of trusted CA certificates (replaces the system CAs) */
  ca: nonEmptyString().optional(),
  /** client certificate (PEM path), for mutual TLS; needs `key` */
  cert: nonEmptyString().optional(),
  /** client private key (PEM path), for mutual TLS; needs `cert` */
  key: nonEmptyString().optional(),
  /** server name for SNI and certificate verification */
  servername: nonEmptyString().optional(),
  /** skip certificate verification. Only for testing. */
  insecure: z.boolean().default(false),
}).superRefine((t, ctx) => {
  if (t.cert !== undefined && t.key === undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: 'is required when cert is set (mutual TLS needs both)' });
  if (t.key !== undefined && t.cert === undefined) ctx.addIssue({ code: 'custom', path: ['cert'], message: 'is required when key is set (mutual TLS needs both)' });
});

const sentinelSchema = strict({
  /** the master group name monitored by the sentinels */
  name: nonEmptyString(),
  nodes: z.array(redisUrl()).min(1, { error: 'must list at least one sentinel' }),
});

const CONNECTION_KINDS = ['url', 'cluster', 'sentinel'] as const;

const rawRedisConnectionSchema = strict({
  url: redisUrl().optional(),
  cluster: z.array(redisUrl()).min(1, { error: 'must list at least one node' }).optional(),
  sentinel: sentinelSchema.optional(),
  tls: tlsSchema.optional(),
  db: z.int().min(0).optional(),
  username: nonEmptyString().optional(),
  password: nonEmptyString().optional(),
});

function connectionUrls(c: Record<string, unknown>): string[] {
  const out: string[] = [];
  if (typeof c.url === 'string') out.push(c.url);
  if (Array.isArray(c.cluster)) out.push(...c.cluster.filter((x): x is string => typeof x === 'string'));
  if (isRecord(c.sentinel) && Array.isArray(c.sentinel.nodes)) {
    out.push(...c.sentinel.nodes.filter((x): x is string => typeof x === 'string'));
  }
  return out;
}

export const redisConnectionSchema = rawRedisConnectionSchema
  .superRefine(
    (c, ctx) => {
      // runs even when a field failed, so that all problems are reported at once: be defensive
      if (!isRecord(c)) return;
      const kinds = CONNECTION_KINDS.filter((k) => c[k] !== undefined);
      const [kind] = kinds;
      if (kind === undefined) {
        ctx.addIssue({ code: 'custom', message: 'needs exactly one of url, cluster or sentinel' });
        return;
      }
      if (kinds.length > 1) {
        ctx.addIssue({ code: 'custom', message: `has ${kinds.join(' and ')}: use exactly one of url, cluster or sentinel` });
        return;
      }
      if (c.db !== undefined && kind !== 'sentinel') {
        ctx.addIssue({
          code: 'custom',
          path: ['db'],
          message: kind === 'url' ? 'is only valid with sentinel (put the database in the URL: redis://host:6379/2)' : 'is only valid with sentinel (Redis Cluster has only database 0)',
        });
      }
      if (kind === 'url') {
        for (const k of ['username', 'password'] as const) {
          if (c[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: 'is only valid with cluster or sentinel (put credentials in the URL: redis://user:password@host)' });
        }
      }
      const urls = connectionUrls(c).map(parseUrl).filter((u): u is URL => u !== undefined);
      const schemes = new Set(urls.map((u) => u.protocol));
      if (schemes.size > 1) {
        ctx.addIssue({ code: 'custom', path: [kind], message: 'mixes redis:// and rediss:// URLs: use one scheme for all nodes' });
      } else if (c.tls !== undefined && schemes.has('redis:')) {
        ctx.addIssue({ code: 'custom', path: ['tls'], message: 'TLS options need rediss:// URLs (this connection uses redis://)' });
      }
    },
    { when: () => true },
  )
  .transform((c) => {
    const tls = c.tls;
    if (c.sentinel !== undefined) {
      return { kind: 'sentinel' as const, sentinel: c.sentinel, db: c.db, username: c.username, password: c.password, tls };
    }
    if (c.cluster !== undefined) {
      return { kind: 'cluster' as const, cluster: c.cluster, username: c.username, password: c.password, tls };
    }
    return { kind: 'url' as const, url: c.url as string, tls };
  });

export type RedisConnectionConfig = z.output<typeof redisConnectionSchema>;
export type UrlRedisConnectionConfig = Extract<RedisConnectionConfig, { kind: 'url' }>;
export type ClusterRedisConnectionConfig = Extract<RedisConnectionConfig, { kind: 'cluster' }>;
export type SentinelRedisConnectionConfig = Extract<RedisConnectionConfig, { kind: 'sentinel' }>;
export type TlsConfig = z.output<typeof tlsSchema>;
