import type { RedisCommand } from '../sinks/sink.js';

/** The keys a planned command writes (EVAL declares them; other commands write their first argument). */
export function commandKeys(cmd: RedisCommand): string[] {
  const name = cmd[0]?.toUpperCase();
  if (name === 'EVAL' || name === 'EVALSHA') return cmd.slice(3, 3 + Number(cmd[2] ?? 0));
  if (name === 'PUBLISH') return [];
  return cmd[1] === undefined ? [] : [cmd[1]];
}
