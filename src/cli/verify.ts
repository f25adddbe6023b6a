import { configPathFrom, loadConfig } from '../config/load.js';
import type { SluiceConfig } from '../config/schema.js';
import { StateStore } from '../state/state-store.js';
import { SinkControl } from '../control/sink-control.js';
import { createLogger } from '../util/log.js';
import { ApiClient } from './api-client.js';
import type { BackfillView } from '../backfill/backfill-manager.js';
import { compareSink, type Difference, type VerifyResult } from '../verify/compare.js';
import type { RepairView } from '../verify/repair.js';
import { SluiceError, errorMessage } from '../util/errors.js';

function example(d: Difference): string {
  const where = d.item !== undefined ? `${d.key} ${JSON.stringify(d.item)}` : d.key;
  if (d.kind === 'stale') return `stale ${where}: redis ${d.actual} != postgres ${d.expected}`;
  return `${d.kind} ${where}`;
}

export function formatResult(r: VerifyResult): string {
  let out = '';
  for (const t of r.tables) {
    const parts = [`${t.ok} ok`, `${t.missing} missing`, `${t.stale} stale`, t.orphansChecked ? `${t.orphans} orphaned` : 'orphans not checked'];
    if (t.failed > 0) parts.push(`${t.failed} refused by the sink (failed messages)`);
    out += `${t.table}: ${t.rows} rows — ${parts.join(', ')}\n`;
    for (const e of t.examples) out += `  ${example(e)}\n`;
    const shown = t.examples.length;
    const total = t.missing + t.stale + t.orphans;
    if (total > shown) out += `  … and ${total - shown} more\n`;
    if (t.rechecked > 0) out += `  (${t.rechecked} difference(s) seen during the scan were gone when checked again: writes in flight)\n`;
  }
  for (const n of r.notes) out += `note: ${n}\n`;
  out += r.inSync ? 'in sync\n' : 'out of sync\n';
  return out;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts a repair on the running instance and waits for its backfill and orphan sweep. */
async function repair(config: SluiceConfig, sink: string): Promise<boolean> {
  const api = new ApiClient(config);
  const enc = encodeURIComponent(sink);
  const { repair: started } = await api.post<{ repair: RepairView }>(`/api/sinks/${enc}/repair`, {});
  process.stdout.write(`repairing ${sink}: backfill ${started.backfill_id ?? '(none)'} and orphan sweep started\n`);
  let lastPrinted = 0;
  for (;;) {
    const [{ repair: r }, { backfills }] = await Promise.all([
      api.get<{ repair: RepairView }>(`/api/sinks/${enc}/repair`),
      api.get<{ backfills: BackfillView[] }>(`/api/sinks/${enc}/backfills`),
    ]);
    const mine = backfills.filter((b) => b.id === r.backfill_id);
    const done = r.state !== 'running' && mine.every((b) => b.state !== 'running');
    if (done || Date.now() - lastPrinted > 2000) {
      lastPrinted = Date.now();
      const rows = mine.map((b) => `${b.table} ${b.rows}/${b.estimated_total ?? '?'} ${b.state}`).join(', ');
      const o = r.orphans;
      const sweep = o.state === 'done' ? `${o.deleted} orphan(s) deleted, ${o.kept} kept (written meanwhile)` : `orphan sweep ${o.state}`;
      process.stdout.write(`  backfill: ${rows || 'no tables'}; ${sweep}\n`);
    }
    if (done) {
      for (const b of mine) if (b.state !== 'done') process.stderr.write(`backfill of ${b.table} ${b.state}${b.error ? `: ${b.error}` : ''}\n`);
      if (r.state === 'failed') process.stderr.write(`orphan sweep failed: ${r.error ?? 'unknown error'}\n`);
      return r.state === 'done' && mine.every((b) => b.state === 'done');
    }
    await sleep(500);
  }
}

/**
 * `sluice verify SINK [--repair] [--examples N]`: compares Postgres with Redis for a sink
 * directly (no running instance needed). Exit 0 in sync, 1 out of sync, 2 cannot verify.
 * `--repair` asks the running instance to repair (backfill + orphan sweep) and compares again.
 */
/** Sinks created through the API live in the state store, not in the file. */
async function addStoredSinks(config: SluiceConfig): Promise<void> {
  const log = createLogger('error');
  const state = await StateStore.open({ url: config.state.url, schema: config.state.schema, log });
  try {
    config.sinks.push(...(await SinkControl.load(config, state, log)).apiSinks);
  } finally {
    await state.close();
  }
}

/**
 * `--repair` is done by the running instance: asked before anything is compared, so that an
 * API that is off or not answering is one sentence saying what to turn on, not a failure after
 * a long comparison. Null when the instance answers.
 */
export async function repairUnavailable(config: SluiceConfig): Promise<string | null> {
  if (config.http.port === 0) {
    return 'sluice verify --repair asks the running instance to repair, and its HTTP API is off (http.port: 0): set http.port in the config (e.g. 7376), restart sluice start, and run this again';
  }
  try {
    await new ApiClient(config, { timeoutMs: 5000 }).read('GET', '/health');
    return null;
  } catch (err) {
    if (err instanceof SluiceError && err.code === 'unauthorized') return errorMessage(err);
    const api = new ApiClient(config);
    return `sluice verify --repair asks the running instance to repair, and nothing answers at ${api.base}: start it (sluice start with this config) with its HTTP API on (http.host and http.port), then run this again`;
  }
}

export async function runVerify(configArg: string | undefined, sink: string | undefined, doRepair: boolean, examplesArg: string | undefined): Promise<number> {
  if (!sink) {
    process.stderr.write('sluice verify needs the sink name: sluice verify SINK [--repair] [--examples N]\n');
    return 2;
  }
  const examples = examplesArg === undefined ? 10 : Number(examplesArg);
  if (!Number.isInteger(examples) || examples < 0) {
    process.stderr.write(`--examples must be a whole number (got "${examplesArg}")\n`);
    return 2;
  }
  const config = loadConfig(configPathFrom(configArg));
  if (doRepair) {
    const why = await repairUnavailable(config);
    if (why !== null) {
      process.stderr.write(`${why}\n`);
      return 2;
    }
  }
  let result: VerifyResult;
  try {
    if (!config.sinks.some((s) => s.name === sink)) await addStoredSinks(config);
    result = await compareSink(config, sink, { examples });
  } catch (err) {
    process.stderr.write(`sluice: cannot verify: ${errorMessage(err)}\n`);
    return 2;
  }
  process.stdout.write(formatResult(result));
  if (result.inSync || !doRepair) return result.inSync ? 0 : 1;
  try {
    if (!(await repair(config, sink))) return 1;
    process.stdout.write('after repair:\n');
    result = await compareSink(config, sink, { examples });
  } catch (err) {
    process.stderr.write(`sluice: repair: ${errorMessage(err)}\n`);
    return 1;
  }
  process.stdout.write(formatResult(result));
  return result.inSync ? 0 : 1;
}
