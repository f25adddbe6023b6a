// The fault suite's tables, their audit log and what the checker needs to know of them.
//
// Every data table has a `ver` column set from one sequence on every insert and update: a row's
// versions only grow, in commit order (one writer), so the monitor can tell an older value from
// a newer one. A row trigger writes each change, in the same transaction, into `audit` (the new
// and old rows as jsonb, without the 100 KB TOASTed column): with one writer connection, `seq`
// order is commit order, and the checker derives from it what every history sink must hold.

import type { Rng } from './rng.js';

export interface TableDef {
  /** the table's name (the root of a partitioned table) */
  name: string;
  /** primary key columns, in key order ({pk} joins their values with ':') */
  pk: string[];
  /** every column, in table order */
  columns: string[];
  /** REPLICA IDENTITY FULL: deletes and updates carry the whole old row */
  identityFull: boolean;
  /** audited (history and pub/sub sinks can be checked against it) */
  audited: boolean;
  /** a row-like object with the columns key templates use, for the monitor's samples */
  sampleRow(rng: Rng, sizes: IdSpace): Record<string, unknown>;
}

/** how many ids each table's workload uses */
export interface IdSpace {
  acct: number;
  mv: number;
  doc: number;
  ck: number;
  part: number;
  groups: number;
}

export const TENANTS = ['acme', 'globex', 'umbrella', 'initech'] as const;
export const REGIONS = [0, 1, 2] as const;
/** rows of one large transaction */
export const BIG_ROWS = 20_000;
/** bytes of doc.body (TOASTed: stored out of line, uncompressed) */
export const DOC_BODY_BYTES = 100_000;

export const TABLES: Record<string, TableDef> = {
  acct: {
    name: 'acct',
    pk: ['id'],
    columns: ['id', 'grp', 'score', 'ver', 'name', 'note', 'lon', 'lat'],
    identityFull: false,
    audited: true,
    sampleRow: (rng, s) => ({ id: 1 + rng.int(s.acct), grp: rng.int(s.groups) }),
  },
  mv: {
    name: 'mv',
    pk: ['id'],
    columns: ['id', 'grp', 'score', 'ver', 'tag', 'lon', 'lat'],
    identityFull: true,
    audited: true,
    sampleRow: (rng, s) => ({ id: 1 + rng.int(s.mv), grp: rng.int(s.groups) }),
  },
  doc: {
    name: 'doc',
    pk: ['id'],
    columns: ['id', 'ver', 'title', 'body'],
    identityFull: false,
    audited: true,
    sampleRow: (rng, s) => ({ id: 1 + rng.int(s.doc) }),
  },
  ck: {
    name: 'ck',
    pk: ['tenant', 'id'],
    columns: ['tenant', 'id', 'ver', 'val'],
    identityFull: false,
    audited: true,
    sampleRow: (rng, s) => ({ tenant: rng.pick(TENANTS), id: 1 + rng.int(s.ck) }),
  },
  part: {
    name: 'part',
    pk: ['region', 'id'],
    columns: ['region', 'id', 'ver', 'val'],
    identityFull: false,
    audited: true,
    sampleRow: (rng, s) => ({ region: rng.pick(REGIONS), id: 1 + rng.int(s.part) }),
  },
  bulk: {
    name: 'bulk',
    pk: ['id'],
    columns: ['id', 'grp', 'ver'],
    identityFull: false,
    audited: true,
    sampleRow: (rng) => ({ id: 1 + rng.int(BIG_ROWS), grp: rng.int(7) }),
  },
  beat: {
    name: 'beat',
    pk: ['id'],
    columns: ['id', 'n'],
    identityFull: false,
    audited: false,
    sampleRow: (rng) => ({ id: 1 + rng.int(2) }),
  },
};

/** beat rows: 1 is bumped after each fault to measure recovery, 2 carries the writer's progress */
export const BEAT_RECOVERY = 1;
export const BEAT_PROGRESS = 2;

const AUDITED = Object.values(TABLES).filter((t) => t.audited).map((t) => t.name);

export const SCHEMA_SQL = `
create sequence fault_ver;
create table audit (
  seq bigserial primary key,
  tx bigint not null default txid_current(),
  -- the WAL insert position when the change was made (just before the change's record): to find
  -- a transaction in Sluice's log when it is reported
  lsn pg_lsn not null default pg_current_wal_insert_lsn(),
  tbl text not null,
  op char(1) not null,
  old jsonb,
  new jsonb
);
create function fault_audit() returns trigger language plpgsql as $$
begin
  insert into audit (tbl, op, old, new) values (
    tg_argv[0],
    left(tg_op, 1),
    case when tg_op <> 'INSERT' then to_jsonb(old) - 'body' end,
    case when tg_op <> 'DELETE' then to_jsonb(new) - 'body' end);
  return null;
end $$;
create table acct (id int primary key, grp int not null, score int not null, ver bigint not null, name text not null, note text, lon float8 not null, lat float8 not null);
create table mv (id int primary key, grp int not null, score int not null, ver bigint not null, tag text not null, lon float8 not null, lat float8 not null);
alter table mv replica identity full;
create table doc (id int primary key, ver bigint not null, title text not null, body text not null);
alter table doc alter column body set storage external;
create table ck (tenant text not null, id int not null, ver bigint not null, val int not null, primary key (tenant, id));
create table part (region int not null, id int not null, ver bigint not null, val int not null, primary key (region, id)) partition by list (region);
${REGIONS.map((r) => `create table part_${r} partition of part for values in (${r});`).join('\n')}
create table bulk (id int primary key, grp int not null, ver bigint not null);
create table beat (id int primary key, n bigint not null);
insert into beat values (${BEAT_RECOVERY}, 0), (${BEAT_PROGRESS}, 0);
${AUDITED.map((t) => `create trigger ${t}_audit after insert or update or delete on ${t} for each row execute function fault_audit('${t}');`).join('\n')}
`;

/** SQL for a 100 KB body that differs with `salt` (generated by Postgres: nothing large on the wire) */
export function docBodySql(salt: string): string {
  return `(select string_agg(md5('${salt}' || b), '') from generate_series(1, ${DOC_BODY_BYTES / 32}) b)`;
}
