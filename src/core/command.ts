import type { Change } from './change.js';
import type { MessageMeta } from './render.js';

/** One Redis command as data: name then arguments. Planned by sinks, sent by the applier. */
export type RedisCommand = string[];

/** The keys a planned command writes (EVAL declares them; other commands write their first argument). */
export function commandKeys(cmd: RedisCommand): string[] {
  const name = cmd[0]?.toUpperCase();
  if (name === 'EVAL' || name === 'EVALSHA') return cmd.slice(3, 3 + Number(cmd[2] ?? 0));
  if (name === 'PUBLISH') return [];
  return cmd[1] === undefined ? [] : [cmd[1]];
}

/** The message a data command was planned from, to blame if Redis rejects the command. */
export interface CommandOrigin {
  readonly sink: string;
  readonly change: Change;
  readonly meta: MessageMeta;
}

/** A data command Redis refused inside a MULTI that otherwise stood (WRONGTYPE, CROSSSLOT…). */
export interface RejectedCommand {
  readonly origin: CommandOrigin;
  readonly error: string;
}
