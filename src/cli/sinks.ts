import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { configPathFrom, loadConfig } from '../config/load.js';
import { SluiceError, errorMessage } from '../util/errors.js';
import { ApiClient, apiErrorOf, segment, type ApiAnswer } from './api-client.js';
import { confirm, readStdin } from './confirm.js';
import { renderTable, type SinkView } from './status-format.js';

/*
 * `sluice sinks list|add|pause|resume|rm`: the sink routes of the running instance's API
 * (GET/POST /api/sinks, POST …/pause and …/resume, DELETE /api/sinks/:name), for people
 * without curl habits. One sentence on stderr and exit 1 when the API says no; `--json` prints
 * the API's answer as it is (errors included) for scripts.
 */

export interface SinksOptions {
  json?: boolean;
  /** `add`: the sink's block, a YAML or JSON file; `-` (or no file with a pipe) reads stdin */
  file?: string | undefined;
  /** `rm`: do not ask */
  yes?: boolean;
}

type ListedSink = SinkView & { tables?: string[] };

/** `sluice sinks list`: one row per sink, from the file or the API. */
export function renderSinkList(sinks: readonly ListedSink[]): string {
  if (sinks.length === 0) return 'no sinks\n';
  const rows = sinks.map((s) => [
    s.name,
    s.type,
    s.origin ?? '-',
    s.state,
    s.redis ?? '-',
    String(s.failed_messages ?? '-'),
    (s.tables ?? []).join(', ') || '-',
  ]);
  return `${renderTable(['SINK', 'TYPE', 'ORIGIN', 'STATE', 'REDIS', 'FAILED', 'TABLES'], rows).join('\n')}\n`;
}

/**
 * The sink block(s) of a YAML or JSON text: one mapping (the block as under `sinks:`), a list of
 * them (`- name: …`, as copied from the file), or a document with a `sinks:` list.
 */
export function sinkBlocks(text: string, source: string): Record<string, unknown>[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    throw new SluiceError('bad_input', `${source} is not valid YAML or JSON${where}: ${(err instanceof YAMLParseError ? err.message.split('\n', 1)[0] : errorMessage(err)) ?? ''}`);
  }
  const isMap = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  const list: unknown = isMap(doc) && !('name' in doc) && Array.isArray(doc.sinks) ? doc.sinks : doc;
  const blocks = Array.isArray(list) ? list : [list];
  if (blocks.length === 0 || !blocks.every(isMap)) {
    throw new SluiceError('bad_input', `${source} holds no sink: give one sink's block (name, type, tables, …) as a YAML mapping or a JSON object`);
  }
  return blocks;
}

/** Why the API refused: its message, then each problem with its path inside the body. */
export function refusal(what: string, answer: ApiAnswer<unknown>): string {
  const e = apiErrorOf(answer.body);
  let out = `sluice: ${what}: ${e.problems.length > 1 ? `${e.problems.length} problems in it` : e.message}\n`;
  for (const p of e.problems) out += `  ${p.path || '(the whole block)'}: ${p.message}\n`;
  return out;
}

async function readBlocks(file: string | undefined): Promise<{ blocks: Record<string, unknown>[]; source: string }> {
  if (file === undefined && process.stdin.isTTY === true) {
    throw new SluiceError('bad_input', 'sluice sinks add needs the sink: -f sink.yaml (or sink.json), or its YAML block on stdin');
  }
  const source = file === undefined || file === '-' ? 'stdin' : file;
  let text: string;
  try {
    text = source === 'stdin' ? await readStdin() : readFileSync(source, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SluiceError('bad_input', `cannot read ${source}: ${code === 'ENOENT' ? 'no such file' : errorMessage(err)}`);
  }
  return { blocks: sinkBlocks(text, source), source };
}

/** The API answer as the output of `--json`: exit 0 on 2xx, else 1 with one sentence on stderr. */
function printJson(answer: ApiAnswer<unknown>, what: string): number {
  process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
  if (answer.ok) return 0;
  process.stderr.write(refusal(what, answer));
  return 1;
}

export async function runSinks(configArg: string | undefined, sub: string | undefined, args: readonly string[], opts: SinksOptions = {}): Promise<number> {
  const usage = 'sluice sinks list | add -f sink.yaml | pause NAME | resume NAME | rm NAME';
  if (sub === undefined) throw new SluiceError('bad_usage', `sluice sinks needs a subcommand: ${usage}`);
  if (!['list', 'add', 'pause', 'resume', 'rm'].includes(sub)) throw new SluiceError('bad_usage', `unknown subcommand "sinks ${sub}": ${usage}`);
  const needsName = sub === 'pause' || sub === 'resume' || sub === 'rm';
  const name = args[0];
  if (needsName && name === undefined) throw new SluiceError('bad_usage', `sluice sinks ${sub} needs the sink's name: sluice sinks ${sub} NAME`);
  // the sink is read before anything is asked of the instance: a mistake in it is the first thing to fix
  const input = sub === 'add' ? await readBlocks(opts.file) : null;
  const api = new ApiClient(loadConfig(configPathFrom(configArg)));

  switch (sub) {
    case 'list': {
      const answer = await api.read<{ sinks: ListedSink[] }>('GET', '/api/sinks');
      if (opts.json) return printJson(answer, 'cannot list the sinks');
      if (!answer.ok) return fail(refusal('cannot list the sinks', answer));
      process.stdout.write(renderSinkList(answer.body.sinks));
      return 0;
    }
    case 'add': {
      const created: unknown[] = [];
      for (const block of input!.blocks) {
        const label = typeof block.name === 'string' ? `sink "${block.name}"` : `the sink in ${input!.source}`;
        const answer = await api.read<{ sink: ListedSink }>('POST', '/api/sinks', block);
        if (!answer.ok) {
          if (opts.json) process.stdout.write(`${JSON.stringify(answer.body, null, 2)}\n`);
          return fail(refusal(`${label} was not created`, answer));
        }
        created.push(answer.body);
        if (!opts.json) {
          const s = answer.body.sink;
          const backfill = block.backfill === true ? '; a backfill of its tables started (sluice status shows it)' : '';
          process.stdout.write(`created sink "${s.name}" (${s.type}, ${(s.tables ?? []).join(', ')}, Redis "${s.redis ?? '?'}"): it takes every change committed from now on${backfill}\n`);
        }
      }
      if (opts.json) process.stdout.write(`${JSON.stringify(created.length === 1 ? created[0] : created, null, 2)}\n`);
      return 0;
    }
    case 'pause':
    case 'resume': {
      const answer = await api.read<{ sink: ListedSink }>('POST', `/api/sinks/${segment(name!)}/${sub}`, {});
      if (opts.json) return printJson(answer, `cannot ${sub} sink "${name!}"`);
      if (!answer.ok) return fail(refusal(`cannot ${sub} sink "${name!}"`, answer));
      process.stdout.write(
        sub === 'pause'
          ? `paused sink "${name!}": it writes nothing, and Postgres keeps the WAL it has not applied until it is resumed (sluice sinks resume ${name!})\n`
          : `resumed sink "${name!}": it applies every change it missed, in order\n`,
      );
      return 0;
    }
    default: {
      const ok = await confirm(`Delete sink "${name!}"? It stops at once; what it wrote stays in Redis.`, `sluice sinks rm deletes sink "${name!}"`, opts.yes === true);
      if (!ok) return fail('sluice: nothing deleted\n');
      const answer = await api.read<unknown>('DELETE', `/api/sinks/${segment(name!)}`);
      if (opts.json) return printJson(answer, `cannot delete sink "${name!}"`);
      if (!answer.ok) return fail(refusal(`cannot delete sink "${name!}"`, answer));
      process.stdout.write(`deleted sink "${name!}": what it wrote stays in Redis; its position, failed messages and backfill records are gone\n`);
      return 0;
    }
  }
}

function fail(text: string): number {
  process.stderr.write(text);
  return 1;
}
