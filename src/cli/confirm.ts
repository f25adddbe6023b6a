import { createInterface } from 'node:readline/promises';
import { SluiceError } from '../util/errors.js';

/**
 * Asks before something that cannot be undone. `--yes` answers for the user; without a terminal
 * to ask on (a script, a pipe) and without `--yes`, nothing is done and the error says to add it.
 */
export async function confirm(question: string, what: string, yes: boolean): Promise<boolean> {
  if (yes) return true;
  if (process.stdin.isTTY !== true) throw new SluiceError('needs_confirmation', `${what}: add --yes to confirm (there is no terminal to ask on)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
  } finally {
    rl.close();
  }
}

/** Reads all of stdin as text. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}
