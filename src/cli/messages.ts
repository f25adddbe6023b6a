import { configPathFrom, loadConfig } from '../config/load.js';
import { SluiceError } from '../util/errors.js';
import { ApiClient, apiErrorOf, segment, type ApiAnswer } from './api-client.js';
import { confirm } from './confirm.js';
import { refusal } from './sinks.js';
import { renderTable } from './status-format.js';

/*
 * `sluice messages list|retry|discard SINK [ID|--all]`: a sink's failed messages (and recent
 * deliveries) through the running instance's API. Ids are used as listed (`0-16B3748-0`).
 */

export interface MessagesOptions {
  json?: boolean;
  /** retry or discard every failed message of the sink */
  all?: boolean;
  /** discard --all: do not ask */
  yes?: boolean;
  /** list: the recent deliveries instead of the failed messages */
  delivered?: boolean;
  limit?: string | undefined;
  cursor?: string | undefined;
}

export interface FailedLine {
  id: string;
  table?: string;
  action?: string;
  reason?: string;
  failed_at?: string;
  message_truncated?: boolean;
}

export interface DeliveryLine {
  id: string;
  table?: string;
  action?: string;
  command?: string;
  key?: string | null;
  commands?: number;
  applied_at?: string;
}

interface FailedPage {
  messages: FailedLine[];
  next_cursor: string | null;
  total: number;
}

const OUTCOMES: Readonly<Record<string, string>> = {
  applied: 'the row as it is now was written',
  row_gone: 'the row no longer exists: nothing written, the entry is cleared',
  superseded: 'the stream changed the row meanwhile and its newer version stands',
  replayed: 'the stored message was applied again',
  pending: 'queued behind the stream: the entry goes once it is applied',
};

/** One line per failed message, then how many there are and how to see the next page. */
export function renderFailedPage(sink: string, page: FailedPage): string {
  if (page.total === 0) return `sink "${sink}" has no failed messages\n`;
  const rows = page.messages.map((m) => [m.id, m.table ?? '-', m.action ?? '-', (m.failed_at ?? '-').replace('T', ' ').replace(/\.\d+Z$/, 'Z'), oneLine(m.reason ?? '-')]);
  let out = rows.length > 0 ? `${renderTable(['ID', 'TABLE', 'ACTION', 'FAILED AT', 'REASON'], rows).join('\n')}\n` : '';
  out += `${page.messages.length} of ${page.total} failed message(s) of sink "${sink}"`;
  out += page.next_cursor === null ? '\n' : `; next page: sluice messages list ${sink} --cursor ${page.next_cursor}\n`;
  return out;
}

export function renderDeliveries(sink: string, messages: readonly DeliveryLine[]): string {
  if (messages.length === 0) return `sink "${sink}" has delivered nothing since this instance started\n`;
  const rows = messages.map((m) => [m.id, m.table ?? '-', m.action ?? '-', `${m.command ?? '?'}${(m.commands ?? 1) > 1 ? ` (+${(m.commands ?? 1) - 1})` : ''}`, m.key ?? '-', (m.applied_at ?? '-').replace('T', ' ')]);
  return `${renderTable(['ID', 'TABLE', 'ACTION', 'COMMAND', 'KEY', 'APPLIED AT'], rows).join('\n')}\n`;
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ');

/** `0-16B3748-0: applied (the row as it is now was written)` */
export function describeOutcome(id: string, outcome: string): string {
  return `${id}: ${outcome.replace('_', ' ')}${OUTCOMES[outcome] ? ` (${OUTCOMES[outcome]})` : ''}`;
}

export async function runMessages(configArg: string | undefined, sub: string | undefined, args: readonly string[], opts: MessagesOptions = {}): Promise<number> {
  const usage = 'sluice messages list SINK | retry SINK ID|--all | discard SINK ID|--all';
  if (sub === undefined) throw new SluiceError('bad_usage', `sluice messages needs a subcommand: ${usage}`);
  if (!['list', 'retry', 'discard'].includes(sub)) throw new SluiceError('bad_usage', `unknown subcommand "messages ${sub}": ${usage}`);
  const [sink, id] = args;
  if (sink === undefined) throw new SluiceError('bad_usage', `sluice messages ${sub} needs the sink's name: ${usage}`);
  if (sub !== 'list') {
    if (id === undefined && !opts.all) throw new SluiceError('bad_usage', `sluice messages ${sub} needs a message id as listed by sluice messages list ${sink}, or --all`);
    if (id !== undefined && opts.all) throw new SluiceError('bad_usage', `give a message id or --all, not both`);
  }
  let limit: number | undefined;
  if (opts.limit !== undefined) {
    limit = /^\d{1,3}$/.test(opts.limit) ? Number(opts.limit) : NaN;
    if (!(limit >= 0 && limit <= 500)) throw new SluiceError('bad_usage', `--limit must be a whole number from 0 to 500 (got "${opts.limit}")`);
  }
  const api = new ApiClient(loadConfig(configPathFrom(configArg)));
  const base = `/api/sinks/${segment(sink)}/messages`;

  if (sub === 'list') {
    const query = new URLSearchParams({ status: opts.delivered ? 'delivered' : 'failed' });
    if (limit !== undefined) query.set('limit', String(limit));
    if (opts.cursor !== undefined) query.set('cursor', opts.cursor);
    const answer = await api.read<FailedPage & { messages: DeliveryLine[] }>('GET', `${base}?${query.toString()}`);
    if (opts.json) process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
    if (!answer.ok) return fail(refusal(`cannot list the messages of sink "${sink}"`, answer));
    if (!opts.json) process.stdout.write(opts.delivered ? renderDeliveries(sink, answer.body.messages) : renderFailedPage(sink, answer.body));
    return 0;
  }

  if (!opts.all) {
    const answer = await api.read<{ id: string; outcome?: string }>('POST', `${base}/${segment(id!)}/${sub}`);
    if (opts.json) process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
    if (!answer.ok) return fail(refusal(sub === 'retry' ? `retry of ${id!} ${answer.status === 422 ? 'failed again' : 'refused'}` : `cannot discard ${id!}`, answer));
    if (!opts.json) process.stdout.write(sub === 'retry' ? `${describeOutcome(answer.body.id, answer.body.outcome ?? '?')}\n` : `${answer.body.id}: discarded\n`);
    return 0;
  }

  // --all: every failed message there is now, newest first, page by page (a cursor is a position,
  // so what a retry leaves in place is not seen twice)
  const first = await api.read<FailedPage>('GET', `${base}?status=failed&limit=0`);
  if (!first.ok) return fail(refusal(`cannot list the failed messages of sink "${sink}"`, first));
  if (first.body.total === 0) {
    if (opts.json) process.stdout.write('[]\n');
    else process.stdout.write(`sink "${sink}" has no failed messages\n`);
    return 0;
  }
  if (sub === 'discard') {
    const ok = await confirm(
      `Discard all ${first.body.total} failed message(s) of sink "${sink}"? They cannot be retried afterwards.`,
      `sluice messages discard --all deletes the ${first.body.total} failed message(s) of sink "${sink}"`,
      opts.yes === true,
    );
    if (!ok) return fail('sluice: nothing discarded\n');
  }
  const results: { id: string; status: number; body: unknown }[] = [];
  const counts = new Map<string, number>();
  let cursor: string | null = null;
  do {
    const query: string = `status=failed&limit=500${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`;
    const page: ApiAnswer<FailedPage> = await api.read<FailedPage>('GET', `${base}?${query}`);
    if (!page.ok) return fail(refusal(`cannot list the failed messages of sink "${sink}"`, page));
    for (const m of page.body.messages) {
      const answer = await api.read<{ id: string; outcome?: string }>('POST', `${base}/${segment(m.id)}/${sub}`);
      results.push({ id: m.id, status: answer.status, body: answer.body });
      const outcome = !answer.ok ? (answer.status === 422 ? 'failed again' : (apiErrorOf(answer.body).code ?? `error ${answer.status}`)) : sub === 'discard' ? 'discarded' : (answer.body.outcome ?? '?');
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      if (opts.json) continue;
      if (answer.ok) process.stdout.write(sub === 'retry' ? `${describeOutcome(m.id, outcome)}\n` : `${m.id}: discarded\n`);
      else process.stdout.write(`${m.id}: ${outcome}: ${apiErrorOf(answer.body).message}\n`);
    }
    cursor = page.body.next_cursor;
  } while (cursor !== null);
  const bad = results.filter((r) => r.status >= 400).length;
  if (opts.json) process.stdout.write(`${JSON.stringify(results.map((r) => ({ id: r.id, status: r.status, answer: r.body })), null, 2)}\n`);
  else process.stdout.write(`${sub === 'retry' ? 'retried' : 'discarded'} ${results.length - bad} of ${results.length}: ${[...counts].map(([k, n]) => `${n} ${k.replace('_', ' ')}`).join(', ')}\n`);
  return bad === 0 ? 0 : 1;
}

function fail(text: string): number {
  process.stderr.write(text);
  return 1;
}
