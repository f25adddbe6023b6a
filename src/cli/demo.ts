import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseConfig } from '../config/load.js';
import { startSluice } from '../app.js';
import { createLogger } from '../util/log.js';
import { freePort } from '../util/free-port.js';
import { startDemoEnvironment } from '../demo/environment.js';
import { createDemoSchema, startDemoWriter } from '../demo/shop.js';

/** `sluice demo`: everything on free ports, nothing to configure, Ctrl-C stops it all. */
export async function runDemo(dirArg: string | undefined): Promise<number> {
  const dir = dirArg ? resolve(dirArg) : mkdtempSync(join(tmpdir(), 'sluice-demo-'));
  mkdirSync(dir, { recursive: true });
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  say(`Starting an embedded Postgres and a redis-server (data in ${dir}) …`);
  const env = await startDemoEnvironment({ dir, log: say });
  let stopEnv = true;
  try {
    await createDemoSchema(env.pgUrl);
    const port = await freePort();
    const yaml = `
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
    const config = parseConfig(yaml, { file: 'demo.yaml', env: {} });
    const app = await startSluice(config, createLogger(process.env.SLUICE_LOG_LEVEL ?? 'warn'));
    const writer = startDemoWriter(env.pgUrl);
    const redisPort = new URL(env.redisUrl).port;
    const pg = new URL(env.pgUrl);
    say('');
    say('Sluice is streaming the demo shop into Redis. The config it runs:');
    say(yaml.trim().split('\n').map((l) => `    ${l}`).join('\n'));
    say('');
    say(`  Console and API   http://127.0.0.1:${port}/   (metrics: /metrics, status: /api/sinks)`);
    say(`  A cached product  redis-cli -p ${redisPort} GET product:1`);
    say(`  Orders as events  redis-cli -p ${redisPort} --scan --pattern 'sluice:orders:*'`);
    say(`  Change a row      psql postgres://postgres@127.0.0.1:${pg.port}/postgres -c "update products set price = 1.99 where id = 1"`);
    say('');
    say('A writer updates prices and stock and places orders every half second. Ctrl-C stops everything.');
    await new Promise<void>((done) => {
      process.once('SIGINT', () => done());
      process.once('SIGTERM', () => done());
    });
    say('Stopping …');
    await writer.stop();
    await app.stop();
  } finally {
    if (stopEnv) {
      stopEnv = false;
      await env.stop();
    }
  }
  return 0;
}
