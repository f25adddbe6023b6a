// A process of an application using the built sluice/client (copied into a throwaway application
// directory by test/support/client-package.ts). One JSON line per event on stdout.
//
//   node worker.mjs stampede REDIS_URL KEY N LOCK_MS   waits for an item of go:KEY, then N
//       concurrent read(KEY); the loader counts itself in loads:KEY and waits for release:KEY
//   node worker.mjs hold REDIS_URL KEY 1 LOCK_MS       takes KEY's lock with a loader that never
//       ends (the test kills the process)
import { SluiceClient, SluiceClientError } from 'sluice/client';
import { Redis } from 'ioredis';

const [mode, url, key, n = '10', lockMs = '10000'] = process.argv.slice(2);
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const redis = new Redis(url);
const client = new SluiceClient({ redis: url });
say({ ready: true, pid: process.pid, errorClass: typeof SluiceClientError });

if (mode === 'stampede') {
  await redis.blpop(`go:${key}`, 30);
  const loader = async () => {
    await redis.incr(`loads:${key}`);
    say({ loading: true });
    await redis.blpop(`release:${key}`, 30);
    return { by: process.pid };
  };
  const reads = Array.from({ length: Number(n) }, () => client.read(key, loader, { ttlMs: 60_000, lockMs: Number(lockMs) }));
  const results = await Promise.all(reads);
  say({ results });
} else if (mode === 'hold') {
  client
    .read(key, async () => {
      say({ loading: true });
      await new Promise(() => undefined);
    }, { ttlMs: 60_000, lockMs: Number(lockMs) })
    .catch((err) => say({ error: err.message }));
  // the connections keep the process alive until it is killed
  await new Promise(() => undefined);
} else {
  say({ error: `unknown mode ${mode}` });
}
await client.close();
redis.disconnect();
