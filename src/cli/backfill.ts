import { configPathFrom, loadConfig } from '../config/load.js';
import { ApiClient } from './api-client.js';
import type { BackfillView } from '../backfill/backfill-manager.js';

function bar(percent: number | null, width = 30): string {
  if (percent === null) return '';
  const filled = Math.round((percent / 100) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] `;
}

function line(b: BackfillView): string {
  const total = b.estimated_total === null ? '?' : String(b.estimated_total);
  const eta = b.eta_seconds === null ? '' : `, ETA ${b.eta_seconds}s`;
  return `${b.table}: ${bar(b.percent)}${b.rows}/${total} rows${b.percent === null ? '' : ` (${b.percent}%)`}, ${b.rate} rows/s${eta} — ${b.state}${b.error ? `: ${b.error}` : ''}`;
}

/** `sluice backfill SINK [--table T] [--from COND]`: starts a backfill on the running instance and follows it. */
export async function runBackfill(configArg: string | undefined, sink: string | undefined, table: string | undefined, from: string | undefined): Promise<number> {
  if (!sink) {
    process.stderr.write('sluice backfill needs the sink name: sluice backfill SINK [--table T] [--from "column>=value"]\n');
    return 1;
  }
  const api = new ApiClient(loadConfig(configPathFrom(configArg)));
  const enc = encodeURIComponent(sink);
  const { backfills } = await api.post<{ backfills: BackfillView[] }>(`/api/sinks/${enc}/backfills`, { table, from });
  const id = backfills[0]?.id;
  const tty = process.stdout.isTTY === true;
  let lastPrinted = 0;
  for (;;) {
    const { backfills: all } = await api.get<{ backfills: BackfillView[] }>(`/api/sinks/${enc}/backfills`);
    const mine = all.filter((b) => b.id === id);
    const finished = mine.every((b) => b.state !== 'running');
    if (tty) {
      process.stdout.write(`\x1b[2K\r${mine.map(line).join(' | ')}`);
    } else if (finished || Date.now() - lastPrinted > 2000) {
      lastPrinted = Date.now();
      for (const b of mine) process.stdout.write(`${line(b)}\n`);
    }
    if (finished) {
      if (tty) process.stdout.write('\n');
      return mine.every((b) => b.state === 'done') ? 0 : 1;
    }
    await new Promise((r) => setTimeout(r, tty ? 250 : 500));
  }
}
