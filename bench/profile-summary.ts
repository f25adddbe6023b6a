// Summarizes V8 .cpuprofile files (from `npm run bench -- --profile DIR` or `node --cpu-prof`):
// self time aggregated by function + file, and by file (package / source file).
//
//   node --import tsx bench/profile-summary.ts /tmp/prof/sluice-catch-up-*.cpuprofile [--top 30]

import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const REPO = relative(process.cwd(), fileURLToPath(new URL('..', import.meta.url))) || '.';

function shortUrl(url: string): string {
  if (url === '') return '(native)';
  let path = url.startsWith('file://') ? fileURLToPath(url) : url;
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + 1);
  const cwd = process.cwd();
  if (path.startsWith(`${cwd}/`)) path = path.slice(cwd.length + 1);
  return path;
}

/** A coarse owner of a file: a package, node internals, or a Sluice source directory. */
function area(url: string): string {
  const s = shortUrl(url);
  if (s.startsWith('node_modules/')) {
    const parts = s.split('/');
    return parts[1]!.startsWith('@') ? `${parts[1]}/${parts[2]}` : parts[1]!;
  }
  if (s.startsWith('node:')) return 'node internals';
  if (s === '(native)') return '(native / VM)';
  return s;
}

function summarize(file: string, top: number): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    // a sample's time is the delta to the next sample (the last one: the mean)
    const dt = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, number>();
  const byArea = new Map<string, number>();
  for (const [id, us] of self) {
    const { callFrame: f } = byId.get(id)!;
    const name = f.functionName || '(anonymous)';
    const key = f.url === '' ? name : `${name}  ${shortUrl(f.url)}:${f.lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const a = f.url === '' && name.startsWith('(') ? name : area(f.url);
    byArea.set(a, (byArea.get(a) ?? 0) + us);
  }
  const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
  const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(7)} ms`;
  console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled (${REPO})`);
  console.log('\nself time by function:');
  for (const [k, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)} ${ms(us)}  ${k}`);
  console.log('\nself time by file / package:');
  for (const [k, us] of [...byArea].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${pct(us)} ${ms(us)}  ${k}`);
  console.log('');
}

const args = process.argv.slice(2);
let top = 30;
const files: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--top') top = Number(args[++i]);
  else files.push(args[i]!);
}
if (files.length === 0) {
  console.error('usage: node --import tsx bench/profile-summary.ts FILE.cpuprofile... [--top N]');
  process.exit(2);
}
for (const f of files) summarize(f, top);
