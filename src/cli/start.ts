import { dirname } from 'node:path';
import { configPathFrom, loadConfig } from '../config/load.js';
import { startSluice } from '../app.js';
import { createLogger } from '../util/log.js';

export async function runStart(configArg: string | undefined, opts: { logValues?: boolean } = {}): Promise<number> {
  const path = configPathFrom(configArg);
  const config = loadConfig(path);
  const log = createLogger(config.log.level, { values: opts.logValues === true || config.log.values });
  const app = await startSluice(config, log, { configDir: dirname(path) });
  await new Promise<void>((resolve) => {
    const onSignal = (sig: string): void => {
      log.info({ signal: sig }, 'draining');
      resolve();
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  });
  await app.stop();
  return 0;
}
