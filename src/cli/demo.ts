import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { loadConfig } from '../config/load.js';
import { startSluice } from '../app.js';
import { createLogger } from '../util/log.js';
import { freePort } from '../util/free-port.js';
import { onProcessExit } from '../util/process.js';
import { startDemoEnvironment } from '../demo/environment.js';
import { createDemoSchema, startDemoWriter } from '../demo/shop.js';

/**
 * The command that runs this same Sluice, as the user can type it from the current directory:
 * `bin/sluice` from a checkout, else the script's absolute path.
 */
function sluiceCommand(): string {
  const script = process.argv[1];
  if (!script) return 'sluice';
  const rel = relative(process.cwd(), script);
  if (rel === '' || rel.startsWith('..')) return script;
  return rel.includes('/') ? rel : `./${rel}`;
}

/** Quotes a path for a POSIX shell when it needs it. */
const shellWord = (s: string): string => (/^[\w./@%+=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/**
 * `sluice demo`: everything on free ports, nothing to configure. The config it runs is written to
 * `<dir>/sluice.yaml`, so that `sluice status -c <that file>` (printed) reaches it. Ctrl-C (or
 * SIGTERM) stops it all, at any moment; without --dir the temporary folder (Postgres's and Redis's
 * files, the config) is removed on the way out.
 */
export async function runDemo(dirArg: string | undefined): Promise<number> {
  const temporary = dirArg === undefined;
  const dir = temporary ? mkdtempSync(join(tmpdir(), 'sluice-demo-')) : resolve(dirArg);
  mkdirSync(dir, { recursive: true });
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  const removeDir = (): void => rmSync(dir, { recursive: true, force: true });
  // last resort (an exit without the steps below, a second Ctrl-C): the folder goes anyway
  const unregisterRemove = temporary ? onProcessExit(removeDir) : () => undefined;

  // Ctrl-C at any moment, even while the servers start: what runs is stopped in order
  let stopRequested = false;
  let wake: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (wake = r));
  const onSignal = (): void => {
    if (stopRequested) {
      say('Stopping now.');
      process.exit(130); // exit hooks stop the servers and remove the temporary folder
    }
    stopRequested = true;
    say('Stopping … (Ctrl-C again to stop at once)');
    wake();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    say(`Starting an embedded Postgres and a redis-server (data in ${dir}) …`);
    const env = await startDemoEnvironment({ dir, log: say });
    try {
      if (stopRequested) return 0;
      await createDemoSchema(env.pgUrl);
      const port = await freePort();
      const configPath = join(dir, 'sluice.yaml');
      const yaml = `# the config of the running sluice demo (written by sluice demo${temporary ? '; removed when it stops' : ''})
source:
  url: ${env.pgUrl}
  slot: sluice_demo
  publication: sluice_demo
redis:
  demo:
    url: ${env.redisUrl}
sinks:
  - name: products
    type: string
    tables: [public.products]
    key: "product:{id}"
    backfill: true
  - name: orders
    type: string
    tables: [public.orders]
    value: message
    backfill: true
http:
  port: ${port}
log:
  level: warn
`;
      writeFileSync(configPath, yaml);
      if (stopRequested) return 0;
      const app = await startSluice(loadConfig(configPath, {}), createLogger(process.env.SLUICE_LOG_LEVEL ?? 'warn'));
      try {
        if (stopRequested) return 0;
        const writer = startDemoWriter(env.pgUrl);
        try {
          const redisPort = new URL(env.redisUrl).port;
          const pg = new URL(env.pgUrl);
          say('');
          say(`Sluice is streaming the demo shop into Redis. The config it runs is ${configPath}:`);
          say(yaml.trim().split('\n').filter((l) => !l.startsWith('#')).map((l) => `    ${l}`).join('\n'));
          say('');
          say(`  Console and API   http://127.0.0.1:${port}/   (metrics: /metrics, status: /api/sinks)`);
          say(`  Its status        ${sluiceCommand()} status -c ${shellWord(configPath)}`);
          say(`  A cached product  redis-cli -p ${redisPort} GET product:1`);
          say(`  Orders as events  redis-cli -p ${redisPort} --scan --pattern 'sluice:orders:*'`);
          say(`  Change a row      psql postgres://postgres@127.0.0.1:${pg.port}/postgres -c "update products set price = 1.99 where id = 1"`);
          say('');
          say(`A writer updates prices and stock and places orders every half second. Ctrl-C stops everything${temporary ? ` and removes ${dir}` : ` (the data stays in ${dir})`}.`);
          await stopped;
        } finally {
          await writer.stop();
        }
      } finally {
        await app.stop();
      }
    } finally {
      await env.stop();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    if (temporary) {
      removeDir();
      unregisterRemove();
      say(`Removed ${dir}.`);
    }
  }
  return 0;
}
