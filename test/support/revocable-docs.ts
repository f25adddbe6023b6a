import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SluiceTestEnv } from './sluice-env.js';

/**
 * For tests of failing row lookups: a published table `docs (id, title, body)` with `rows` rows
 * whose body is TOASTed (so an update of the title alone needs the row read from Postgres), and
 * sluice.yaml with a backfilled hash sink `docs` (key `doc:{id}`). Sluice reads as the role
 * `sluice_r`, whose SELECT a test takes away (`revoke select on docs from sluice_r`) to make the
 * lookups fail; its own state stays with the superuser.
 */
export async function setUpRevocableDocs(env: SluiceTestEnv, rows: number): Promise<void> {
  await env.pg.query(`
    create table docs (id int primary key, title text, body text);
    create role sluice_r login replication;
    grant select on docs to sluice_r;
    create publication sluice for table docs with (publish_via_partition_root = true);
    insert into docs select i, 'first', (select string_agg(md5(g::text || i::text || random()::text), '') from generate_series(1, 400) g) from generate_series(1, ${rows}) i;`);
  const url = env.pg.url.replace('postgres://postgres@', 'postgres://sluice_r@');
  writeFileSync(
    join(env.dir, 'sluice.yaml'),
    `source:\n  url: ${url}\nstate:\n  url: ${env.pg.url}\nredis:\n  main:\n    url: ${env.redis.url}\nsinks:\n  - name: docs\n    type: hash\n    tables: [docs]\n    key: "doc:{id}"\n    backfill: true\nhttp:\n  port: ${env.httpPort}\n`,
  );
}
