import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import { errorMessage, SluiceError } from '../util/errors.js';
import { CERT_VERIFY_ERROR_CODES } from '../util/tls-errors.js';

/**
 * The pg ClientConfig for every Sluice connection to the source (replication, setup, check,
 * text clients, monitor, backfill): `sslmode`, `sslrootcert`, `sslcert` and `sslkey` in the URL
 * mean what they mean to libpq (psql, pg_dump, pg_recvlogical):
 *
 *   disable      no TLS
 *   allow        no TLS (libpq would retry with TLS if the server refused plain text; Sluice does not)
 *   prefer       TLS, server not verified (libpq would fall back to plain text if the server has
 *                no TLS; Sluice reports the server has no TLS instead)
 *   require      TLS, server not verified — unless a root certificate is given (sslrootcert, or
 *                ~/.postgresql/root.crt exists): then as verify-ca, like libpq
 *   verify-ca    TLS, the chain must lead to sslrootcert; the host name is not checked
 *   verify-full  TLS, the chain must lead to sslrootcert and the certificate must name the host
 *   no-verify    (node-postgres' own mode) TLS, nothing verified
 *
 * sslrootcert=system (libpq 16) trusts Node's built-in CAs and implies verify-full. verify-full
 * without any root certificate also uses the built-in CAs (libpq would refuse; node-postgres has
 * always done this); verify-ca without one is refused, as libpq does (a public CA would vouch for
 * anybody's certificate). Without sslmode in the URL, PGSSLMODE applies (and
 * PGSSLROOTCERT, PGSSLCERT, PGSSLKEY for the files); without either Sluice connects without TLS
 * (node-postgres' default; libpq's default is prefer) — except that sslrootcert alone means
 * verify-full: a root certificate is never silently ignored.
 *
 * node-postgres' own parsing of these parameters (pg-connection-string 2.x) differs: it treats
 * prefer, require and verify-ca as verify-full (and warns), unless `uselibpqcompat=true`. The ssl
 * parameters are therefore taken out of the connection string here and replaced by explicit
 * `ssl` options; the rest of the URL is left to node-postgres.
 */
export type PgSslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full' | 'no-verify';

export interface PgTlsSettings {
  /** the effective mode (after env defaults and the libpq rules above) */
  mode: PgSslMode;
  /** what node-postgres gets as `ssl` */
  ssl: false | ConnectionOptions;
  /** the root certificate file in use, if any ('system' for the built-in CAs) */
  rootCert?: string;
  /** true when the server's certificate chain is checked */
  verifiesChain: boolean;
  /** true when the server's host name is checked too */
  verifiesHost: boolean;
}

const MODES: readonly string[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'];
/** connection-string parameters handled here, never passed on to node-postgres */
const SSL_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat', 'sslnegotiation'];

function parseUrl(url: string): URL | undefined {
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

function readPem(what: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new SluiceError('pg_tls_file', `source.url: cannot read ${what} ${path}: ${errorMessage(err)}`);
  }
}

const isUnixSocket = (u: URL): boolean => {
  const host = u.searchParams.get('host') ?? decodeURIComponent(u.hostname);
  return host.startsWith('/');
};

/** The TLS settings a URL asks for (see the module comment). Throws SluiceError for unreadable files or verify-* without a CA. */
export function pgTlsSettings(url: string, env: NodeJS.ProcessEnv = process.env): PgTlsSettings {
  const u = parseUrl(url);
  const param = (name: string, envName: string): string | undefined => {
    const v = u?.searchParams.get(name);
    if (v !== null && v !== undefined && v !== '') return v;
    const e = env[envName];
    return e === undefined || e === '' ? undefined : e;
  };
  let rootCert = param('sslrootcert', 'PGSSLROOTCERT');
  let cert = param('sslcert', 'PGSSLCERT');
  let key = param('sslkey', 'PGSSLKEY');
  let given = param('sslmode', 'PGSSLMODE');
  if (given === undefined) {
    // node-postgres' ssl=true / ssl=1 in the URL: TLS with full verification, as before
    const legacy = u?.searchParams.get('ssl');
    if (legacy === 'true' || legacy === '1') given = 'verify-full';
  }
  if (given !== undefined && !MODES.includes(given)) {
    throw new SluiceError('pg_sslmode', `source.url: sslmode must be one of ${MODES.join(', ')} (got ${JSON.stringify(given)})`);
  }
  let mode: PgSslMode = (given as PgSslMode | undefined) ?? (rootCert !== undefined ? 'verify-full' : 'disable');
  // libpq never uses TLS over a unix-domain socket
  if (u && isUnixSocket(u)) mode = 'disable';
  const off = { mode, ssl: false as const, verifiesChain: false, verifiesHost: false };
  if (mode === 'disable' || mode === 'allow') return off;

  if (rootCert === 'system') {
    if (given !== undefined && mode !== 'verify-full') {
      throw new SluiceError('pg_sslmode', `source.url: weak sslmode "${mode}" may not be used with sslrootcert=system (use "verify-full")`);
    }
    mode = 'verify-full';
  }
  // libpq's default files, used when present
  const pgDir = join(homedir(), '.postgresql');
  if (rootCert === undefined && mode !== 'prefer' && mode !== 'no-verify' && existsSync(join(pgDir, 'root.crt'))) rootCert = join(pgDir, 'root.crt');
  if (cert === undefined && existsSync(join(pgDir, 'postgresql.crt'))) {
    cert = join(pgDir, 'postgresql.crt');
    key ??= join(pgDir, 'postgresql.key');
  }

  const ssl: ConnectionOptions = {};
  if (cert !== undefined) ssl.cert = readPem('sslcert', cert);
  if (key !== undefined) ssl.key = readPem('sslkey', key);
  if (mode === 'verify-ca' && rootCert === undefined) {
    throw new SluiceError(
      'pg_tls_file',
      'source.url: sslmode=verify-ca needs the CA to verify the server against: add sslrootcert=/path/to/ca.pem to the URL (or use sslmode=verify-full, which also checks the host name)',
    );
  }
  // verify-full without a root certificate: Node's built-in CAs (libpq would refuse; node-postgres has always done this)
  if (mode === 'verify-full' && rootCert === undefined) rootCert = 'system';
  // require with a root certificate behaves as verify-ca (libpq)
  const effective: PgSslMode = mode === 'require' && rootCert !== undefined ? 'verify-ca' : mode;
  const verifiesChain = effective === 'verify-ca' || effective === 'verify-full';
  if (verifiesChain) {
    if (rootCert !== 'system') ssl.ca = readPem('sslrootcert', rootCert!);
    ssl.rejectUnauthorized = true;
    if (effective === 'verify-ca') ssl.checkServerIdentity = () => undefined;
  } else {
    ssl.rejectUnauthorized = false;
  }
  return { mode: effective, ssl, ...(rootCert !== undefined && verifiesChain ? { rootCert } : {}), verifiesChain, verifiesHost: effective === 'verify-full' };
}

/**
 * `new pg.Client(pgClientConfig(url, { application_name: ... }))`: the URL's connection
 * settings with its TLS parameters applied the libpq way.
 */
export function pgClientConfig(url: string, extra: Omit<pg.ClientConfig, 'connectionString' | 'ssl'> = {}): pg.ClientConfig {
  const tls = pgTlsSettings(url);
  const u = parseUrl(url);
  let connectionString = url;
  let sslnegotiation: string | undefined;
  if (u && SSL_PARAMS.some((p) => u.searchParams.has(p))) {
    sslnegotiation = u.searchParams.get('sslnegotiation') ?? undefined;
    for (const p of SSL_PARAMS) u.searchParams.delete(p);
    connectionString = u.toString();
  }
  // (connectionString wins over other keys in node-postgres: it no longer holds any ssl setting)
  return { ...extra, connectionString, ssl: tls.ssl, ...(sslnegotiation !== undefined ? { sslnegotiation } : {}) } as pg.ClientConfig;
}

/** The warning to log when the source connection is encrypted but the server is not verified (undefined otherwise). */
export function pgTlsWarning(url: string): string | undefined {
  let tls: PgTlsSettings;
  try {
    tls = pgTlsSettings(url);
  } catch {
    return undefined; // reported when connecting
  }
  if (tls.ssl === false || tls.verifiesChain) return undefined;
  return `source.url: sslmode=${tls.mode} encrypts the Postgres connection without verifying the server's certificate (anyone on the network path can impersonate it); use sslmode=verify-full with sslrootcert to verify it`;
}

/** A Postgres connection error in one line, with what to change when it is about TLS. */
export function explainPgConnectError(err: unknown, url: string): string {
  const code = (err as { code?: string } | undefined)?.code ?? '';
  const raw = errorMessage(err);
  const m = /SSL routines:[^:]*:([^:]+):/.exec(raw);
  const msg = (m ? m[1]! : raw).replace(/\s+/g, ' ').trim();
  let tls: PgTlsSettings | undefined;
  try {
    tls = pgTlsSettings(url);
  } catch {
    tls = undefined;
  }
  if (code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    return `the server's certificate is self-signed (sslmode=${tls?.mode ?? '?'}): ${msg} — to trust it, set sslrootcert to that certificate itself (or sslmode=no-verify for testing)`;
  }
  if (CERT_VERIFY_ERROR_CODES.has(code)) {
    const fix = tls?.rootCert !== undefined && tls.rootCert !== 'system'
      ? `sslrootcert (${tls.rootCert}) is not the CA that signed the server's certificate — point sslrootcert at that CA`
      : `set sslrootcert to the CA that signed the server's certificate`;
    return `server certificate verification failed (sslmode=${tls?.mode ?? '?'}): ${msg} — ${fix}`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `server certificate verification failed (sslmode=${tls?.mode ?? '?'}): ${msg} — the server needs a currently valid certificate (or sslmode=no-verify for testing)`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `the server's certificate does not match the host name (sslmode=verify-full): ${msg} — connect with a name the certificate lists, or use sslmode=verify-ca to check the chain only`;
  }
  if (/server does not support SSL/i.test(raw)) {
    return `the server does not accept TLS connections (sslmode=${tls?.mode ?? '?'}) — enable ssl on the server, or use sslmode=disable`;
  }
  if (/certificate required|alert handshake failure/i.test(msg)) {
    return `the server rejected the TLS handshake (${msg}) — it probably requires a client certificate: add sslcert and sslkey to the URL`;
  }
  return msg;
}
