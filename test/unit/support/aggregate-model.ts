// An in-memory Redis that runs what aggregate sinks plan (their two scripts, by identity, and the
// plain commands of a backfill), mirroring the Lua in src/sinks/aggregate-scripts.ts with
// core/decimal.ts. The integration tests run the real scripts on a real Redis.
import type { RedisCommand } from '../../../src/core/command.js';
import { addDecimalText } from '../../../src/core/decimal.js';
import { AGGREGATE_APPLY_SCRIPT, AGGREGATE_SWEEP_SCRIPT } from '../../../src/sinks/aggregate-scripts.js';

export class AggregateRedis {
  readonly hashes = new Map<string, Map<string, string>>();
  /** member → score as the exact text ZADD was given */
  readonly zsets = new Map<string, Map<string, string>>();
  readonly registries = new Map<string, Map<string, string>>();

  run(cmd: RedisCommand): void {
    const [name, ...a] = cmd;
    switch (name) {
      case 'EVAL':
        if (a[0] === AGGREGATE_APPLY_SCRIPT) this.apply(a.slice(2, 4), a.slice(4));
        else if (a[0] === AGGREGATE_SWEEP_SCRIPT) this.sweep(a[2]!, a.slice(3));
        else throw new Error('unknown script');
        return;
      case 'DEL':
        this.hashes.delete(a[0]!);
        this.zsets.delete(a[0]!);
        this.registries.delete(a[0]!);
        return;
      case 'HSET': {
        const h = this.isRegistry(a[0]!) ? this.reg(a[0]!) : this.hash(a[0]!);
        for (let i = 1; i + 1 < a.length; i += 2) h.set(a[i]!, a[i + 1]!);
        return;
      }
      case 'ZADD':
        this.zset(a[0]!).set(a[2]!, a[1]!);
        return;
      default:
        throw new Error(`the model does not run ${name}`);
    }
  }

  /** The registry keys that exist (as SCAN would find them). */
  registryKeys(): string[] {
    return [...this.registries.keys()];
  }

  private isRegistry(key: string): boolean {
    return key.startsWith('sluice:agg:');
  }

  private hash(key: string): Map<string, string> {
    let h = this.hashes.get(key);
    if (!h) this.hashes.set(key, (h = new Map()));
    return h;
  }

  private zset(key: string): Map<string, string> {
    let z = this.zsets.get(key);
    if (!z) this.zsets.set(key, (z = new Map()));
    return z;
  }

  private reg(key: string): Map<string, string> {
    let r = this.registries.get(key);
    if (!r) this.registries.set(key, (r = new Map()));
    return r;
  }

  private drop(map: Map<string, Map<string, string>>, key: string, field: string): void {
    const m = map.get(key);
    if (!m) return;
    m.delete(field);
    if (m.size === 0) map.delete(key);
  }

  private apply([k, r]: string[], argv: string[]): void {
    const [mode, f, delta] = argv as [string, string, string];
    const member = argv[3] ?? '';
    const exists = mode === 'h' ? this.hashes.has(k!) : (this.zsets.get(k!)?.has(member) ?? false);
    let n = '0';
    let s = '0';
    const entry = exists ? this.registries.get(r!)?.get(f) : undefined;
    if (entry !== undefined) [n, s = '0'] = entry.split(' ') as [string, string?];
    n = addDecimalText(n, delta);
    if (n === '0' || n.startsWith('-')) {
      if (mode === 'h') this.hashes.delete(k!);
      else this.drop(this.zsets, k!, member);
      this.drop(this.registries, r!, f);
      return;
    }
    if (mode === 'h') {
      const h = this.hash(k!);
      for (let i = 3; i + 1 < argv.length; i += 2) h.set(argv[i]!, addDecimalText(exists ? (h.get(argv[i]!) ?? '0') : '0', argv[i + 1]!));
      this.reg(r!).set(f, n);
    } else if (mode === 'c') {
      this.zset(k!).set(member, n);
      this.reg(r!).set(f, n);
    } else {
      s = addDecimalText(s, argv[4]!);
      this.zset(k!).set(member, s);
      this.reg(r!).set(f, `${n} ${s}`);
    }
  }

  private sweep(reg: string, argv: string[]): void {
    const [mode, ...keepList] = argv;
    const keep = new Set(keepList);
    const fields = this.registries.get(reg);
    if (!fields) return;
    for (const f of [...fields.keys()]) {
      if (keep.has(f)) continue;
      const c = f.indexOf(':');
      const bytes = Number(f.slice(0, c));
      const rest = Buffer.from(f.slice(c + 1));
      const key = rest.subarray(0, bytes).toString();
      if (mode === 'h') this.hashes.delete(key);
      else this.drop(this.zsets, key, rest.subarray(bytes).toString());
      this.drop(this.registries, reg, f);
    }
  }
}
