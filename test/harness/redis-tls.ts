// A throwaway TLS-only redis-server for the integration tests, with certificates made by
// openssl in a temp dir: a CA, a server certificate for 127.0.0.1 / localhost signed by it, a
// client certificate signed by it (mutual TLS), and a second, unrelated CA (the "wrong CA").
// Bad server certificates too, for the refusals: one signed by the CA that expired in 2020, one
// signed by the CA for another host name only, and a self-signed one for 127.0.0.1 / localhost.
// Free port on 127.0.0.1; never touches the system Redis.

import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/util/free-port.js';
import { onProcessExit, spawnManaged } from '../../src/util/process.js';
import type { ManagedProcess } from '../../src/util/process.js';
import { nodeCommand, spawnRedisServer } from './redis-node.js';

export interface TestCertificates {
  dir: string;
  /** the CA that signed the server and client certificates (PEM path) */
  ca: string;
  /** an unrelated CA (PEM path): verifying the server against it must fail */
  wrongCa: string;
  serverCert: string;
  serverKey: string;
  /** client certificate + key signed by `ca`, for mutual TLS */
  clientCert: string;
  clientKey: string;
  /** signed by `ca` for 127.0.0.1 / localhost, valid only on 2020-01-01 (key: serverKey) */
  expiredCert: string;
  /** signed by `ca`, valid now, for the host name wrong.example only (key: serverKey) */
  wrongHostCert: string;
  /** self-signed (no CA) for 127.0.0.1 / localhost, valid now */
  selfSignedCert: string;
  selfSignedKey: string;
}

export interface TestTlsRedis {
  /** rediss://127.0.0.1:PORT */
  url: string;
  port: number;
  certs: TestCertificates;
  /** the server process's output lines */
  readonly output: readonly string[];
  stop(): Promise<void>;
}

export interface StartTlsRedisOptions {
  /** --tls-auth-clients yes (clients must present a certificate signed by the CA); default no */
  requireClientCert?: boolean;
  /** certificates to reuse (e.g. from another server); default: new ones */
  certs?: TestCertificates;
  /** extra redis-server arguments */
  args?: string[];
  /** the certificate and key the server presents; default certs.serverCert / certs.serverKey */
  serverCert?: string;
  serverKey?: string;
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`openssl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
}

/** Makes the test certificates (EC P-256, valid 2 days) in a new temp dir. */
export async function makeTestCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-certs-'));
  onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string, cn: string): Promise<void> =>
    openssl(['req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  await Promise.all([makeCa('ca', 'Sluice Test CA'), makeCa('wrong-ca', 'Unrelated Test CA')]);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n');
  const leaf = async (name: string, cn: string): Promise<void> => {
    await openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    await openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
  };
  // sequential: both use ca.srl
  await leaf('server', 'localhost');
  await leaf('client', 'sluice-test-client');
  // the server's request again: for another host name only, and (openssl ca, which takes dates) expired
  writeFileSync(join(dir, 'wrong-host.ext'), 'subjectAltName=DNS:wrong.example\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n');
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'wrong-host.crt', '-days', '2', '-extfile', 'wrong-host.ext'], dir);
  writeFileSync(join(dir, 'ca.cnf'), '[ ca ]\ndefault_ca = test\n[ test ]\ndatabase = index.txt\nnew_certs_dir = .\nserial = ca.serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n[ any ]\ncommonName = supplied\n');
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'ca.serial'), '1000\n');
  await openssl(['ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', 'server.csr', '-out', 'expired.crt',
    '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extfile', 'server.ext', '-notext'], dir);
  await openssl(['req', '-x509', ...ec, '-keyout', 'self-signed.key', '-out', 'self-signed.crt', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-addext', 'extendedKeyUsage=serverAuth'], dir);
  return {
    dir,
    ca: join(dir, 'ca.crt'),
    wrongCa: join(dir, 'wrong-ca.crt'),
    serverCert: join(dir, 'server.crt'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.crt'),
    clientKey: join(dir, 'client.key'),
    expiredCert: join(dir, 'expired.crt'),
    wrongHostCert: join(dir, 'wrong-host.crt'),
    selfSignedCert: join(dir, 'self-signed.crt'),
    selfSignedKey: join(dir, 'self-signed.key'),
  };
}

let tlsSupport: Promise<string | undefined> | undefined;

/**
 * undefined when the redis-server on PATH was built with TLS, else the reason it cannot be
 * used (for `test(..., { skip })`). Checked once by starting a server with --tls-port.
 */
export function redisTlsUnsupportedReason(): Promise<string | undefined> {
  tlsSupport ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-tlsprobe-'));
    try {
      const port = await freePort();
      // without certificates: a TLS build complains about the missing files, a non-TLS build
      // about an unknown directive
      const p = spawnManaged('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''], { unref: true });
      const info = await Promise.race([p.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 3000))]);
      if (info === undefined) {
        await p.kill('SIGKILL');
        return undefined;
      }
      if (info.error) return `redis-server could not be run: ${info.error.message}`;
      const out = p.tail(50);
      if (/Bad directive|wrong number of arguments|not supported|tls-port/i.test(out) && !/cert|key|TLS configuration/i.test(out)) {
        return `this redis-server build has no TLS support (redis-server --tls-port was rejected: ${out.split('\n').find((l) => /tls/i.test(l))?.trim() ?? 'unknown directive'})`;
      }
      return undefined;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })();
  return tlsSupport;
}

export async function startTlsRedis(opts: StartTlsRedisOptions = {}): Promise<TestTlsRedis> {
  const certs = opts.certs ?? (await makeTestCertificates());
  const dir = await mkdtemp(join(tmpdir(), 'sluice-tlsredis-'));
  const unregisterDir = onProcessExit(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const args = [
    '--port', '0',
    '--tls-port', String(port),
    '--bind', '127.0.0.1',
    '--tls-cert-file', opts.serverCert ?? certs.serverCert,
    '--tls-key-file', opts.serverKey ?? certs.serverKey,
    '--tls-ca-cert-file', certs.ca,
    '--tls-auth-clients', opts.requireClientCert ? 'yes' : 'no',
    '--save', '',
    '--appendonly', 'no',
    '--dir', dir,
    '--daemonize', 'no',
    ...(opts.args ?? []),
  ];
  const tlsOpts = {
    tls: {
      // a bad server certificate on purpose is not verified by the readiness probe
      rejectUnauthorized: opts.serverCert === undefined,
      ca: readFileSync(certs.ca),
      cert: readFileSync(certs.clientCert),
      key: readFileSync(certs.clientKey),
    },
  };
  let proc: ManagedProcess;
  try {
    proc = await spawnRedisServer(args, `redis-server tls :${port}`, async () => (await nodeCommand(port, ['PING'], tlsOpts)) === 'PONG');
  } catch (err) {
    unregisterDir();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  return {
    url: `rediss://127.0.0.1:${port}`,
    port,
    certs,
    get output() {
      return proc.stdout;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (proc.running) await proc.stop(5000);
      unregisterDir();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
