// A cluster made by initdb once per machine, binaries and user, then copied for each test server.
// initdb takes about 1.6 s on a 2-core machine and a copy about 0.2 s; the suite starts dozens of
// servers. The template is made in a temporary directory and renamed into place, so a template that
// exists is whole; a copy that fails falls back to initdb. Copies share one system identifier (and so
// one Sluice instance identity per slot name): no test runs two of them against one Redis.

import { existsSync, renameSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Ids = { uid: number; gid: number } | undefined;
type Run = (cmd: string, args: string[], ids: Ids) => Promise<string>;

/** `initdb -D dataDir <flags>` with `binDir`'s initdb, as a copy of a template made once. */
export async function initdbFromTemplate(binDir: string, dataDir: string, flags: readonly string[], ids: Ids, run: Run, makeTempDir: (prefix: string, ids: Ids) => Promise<string>): Promise<void> {
  const initdb = (dir: string): Promise<string> => run(join(binDir, 'initdb'), ['-D', dir, ...flags], ids);
  const key = createHash('sha256').update(`${binDir}\0${flags.join('\0')}\0${ids?.uid ?? process.getuid?.() ?? ''}`).digest('hex').slice(0, 16);
  const template = join(tmpdir(), `sluice-pg-template-${key}`);
  if (!existsSync(join(template, 'global', 'pg_control'))) {
    const scratch = await makeTempDir('sluice-pg-template-', ids);
    try {
      await initdb(join(scratch, 'data'));
      // another test process may have made it meanwhile: then this one is dropped
      renameSync(join(scratch, 'data'), template);
    } catch {
      // (the initdb error, if any, comes again below)
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  try {
    await run('cp', ['-a', template, dataDir], ids);
  } catch {
    await rm(dataDir, { recursive: true, force: true });
    await initdb(dataDir);
  }
}
