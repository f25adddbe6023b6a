// How numbers, sizes and times are shown.

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  if (n < 10 && !Number.isInteger(n)) return `${n.toFixed(1)} ms`;
  if (n < 1000) return `${Math.round(n)} ms`;
  if (n < 60_000) return `${(n / 1000).toFixed(1)} s`;
  return duration(n / 1000);
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return '–';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

export function count(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  return n.toLocaleString('en-US', { maximumFractionDigits: 1 });
}

export function rate(n: number | null | undefined): string {
  if (n === null || n === undefined) return '–';
  return `${n.toLocaleString('en-US', { maximumFractionDigits: n < 10 ? 1 : 0 })}/s`;
}

/** "2026-01-02T03:04:05.123Z" → "03:04:05" today, else the date too. */
export function time(iso: string | null | undefined): string {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString('en-GB') : `${d.toLocaleDateString('en-CA')} ${d.toLocaleTimeString('en-GB')}`;
}

/** A state word → the pill's tone. */
export function tone(state: string): 'ok' | 'warn' | 'bad' | 'muted' {
  if (state === 'streaming' || state === 'active' || state === 'ok' || state === 'done' || state === 'ready') return 'ok';
  if (state === 'paused' || state === 'catching-up' || state === 'starting' || state === 'running' || state === 'draining' || state === 'reconnecting') return 'warn';
  if (state === 'failed' || state === 'retrying' || state === 'unhealthy' || state === 'error' || state === 'down' || state === 'cancelled') return 'bad';
  return 'muted';
}
