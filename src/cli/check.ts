import pg from 'pg';
import { configPathFrom, loadConfig } from '../config/load.js';
import { readSourceState, sinkWantsOf, sourceFindings } from '../pg/source-setup.js';
import type { Finding } from '../util/findings.js';
import { checkRedisConnection, sinkOnlyCommands } from '../redis/inspect.js';
import { dirname } from 'node:path';
import { createSink, sinkWarnings } from '../sinks/index.js';
import { SinkFunctions } from '../functions/index.js';
import { errorMessage } from '../util/errors.js';
import { describePgUrl } from '../pg/url.js';
import { NO_SYSTEM_IDENTIFIER, readInstanceName } from '../pg/instance.js';
import { explainPgConnectError, pgClientConfig, pgTlsWarning } from '../pg/connection-config.js';

/** `sluice check`: one line per finding; exit 0 only when nothing is an error. */
export async function runCheck(configArg: string | undefined): Promise<number> {
  const path = configPathFrom(configArg);
  const config = loadConfig(path);
  const findings: Finding[] = [{ severity: 'ok', message: `config ${path} is valid (${config.sinks.length} sink(s))` }];
  for (const [i, s] of config.sinks.entries()) {
    try {
      createSink(s);
    } catch (err) {
      findings.push({ severity: 'error', message: `sinks[${i}]: ${errorMessage(err)}` });
    }
    for (const w of sinkWarnings(s)) findings.push({ severity: 'warn', message: `sinks[${i}].${w.option}: ${w.message}` });
    try {
      SinkFunctions.fromConfig(s, dirname(path)).dispose();
    } catch (err) {
      findings.push({ severity: 'error', message: `sinks[${i}]: ${errorMessage(err)}` });
    }
  }
  const tlsWarning = pgTlsWarning(config.source.url);
  if (tlsWarning !== undefined) findings.push({ severity: 'warn', message: tlsWarning });
  let client: pg.Client | undefined;
  // whose sink names these are (sluice:owner:<sink>), named as sluice start names it; null if
  // Postgres cannot be reached (the owners are not checked then)
  let instance: string | null = config.instance ?? null;
  try {
    client = new pg.Client(pgClientConfig(config.source.url, { application_name: 'sluice-check', connectionTimeoutMillis: 5000 }));
    await client.connect();
    findings.push({ severity: 'ok', message: `connected to Postgres at ${describePgUrl(config.source.url)}` });
    const wants = {
      slot: config.source.slot,
      publication: config.source.publication,
      sinks: sinkWantsOf(config.sinks),
      failover: config.source.failover_slot,
    };
    findings.push(...sourceFindings(await readSourceState(client, wants), wants));
    const warn = (err: string): void => void findings.push({ severity: 'warn', message: `source.url: ${NO_SYSTEM_IDENTIFIER} (${err})` });
    instance = await readInstanceName(config.instance, config.source.slot, client, warn);
  } catch (err) {
    findings.push({ severity: 'error', message: `source.url: cannot connect to Postgres at ${describePgUrl(config.source.url)}: ${explainPgConnectError(err, config.source.url)}` });
  } finally {
    await client?.end().catch(() => undefined);
  }
  for (const [name, spec] of Object.entries(config.redis)) {
    const sinks = config.sinks.filter((s) => s.redis === name);
    findings.push(...(await checkRedisConnection(name, spec, sinks.length > 0, sinkOnlyCommands(sinks), sinks, instance)));
  }
  for (const f of findings) {
    const line = `${f.severity.padEnd(5)} ${f.message}\n`;
    if (f.severity === 'error') process.stderr.write(line);
    else process.stdout.write(line);
  }
  const errors = findings.filter((f) => f.severity === 'error').length;
  process.stdout.write(errors === 0 ? 'all checks passed\n' : `${errors} problem(s) found\n`);
  return errors === 0 ? 0 : 1;
}
