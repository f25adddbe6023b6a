import { configPathFrom, loadConfig } from '../config/load.js';
import { startSluice } from '../app.js';
import { createLogger } from '../util/log.js';

export async function runStart(configArg: string | undefined): Promise<number> {
  const config = loadConfig(configPathFrom(configArg));
  const log = createLogger(config.log.level);
  const app = await startSluice(config, log);
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
