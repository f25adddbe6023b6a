import type pg from 'pg';
import { instanceIdentity } from '../core/keyspace.js';
import { errorMessage } from '../util/errors.js';

/** What is said when pg_control_system() is hidden and the database's name stands in. */
export const NO_SYSTEM_IDENTIFIER =
  'cannot read the Postgres system identifier: the instance is named after the slot and the database instead; set instance: in sluice.yaml if another Postgres cluster with this slot and database name writes to the same Redis';

/**
 * The Postgres cluster's system identifier (fixed at initdb, shared by its physical replicas): part
 * of the instance's default identity. A server that hides pg_control_system() (some managed
 * services) gives the database's name instead, and `warn` is told why (NO_SYSTEM_IDENTIFIER).
 */
export async function readSystemIdentifier(client: pg.Client, warn: (err: string) => void): Promise<string> {
  try {
    const r = await client.query<{ id: string }>('select system_identifier::text as id from pg_control_system()');
    const id = r.rows[0]?.id;
    if (id) return id;
  } catch (err) {
    warn(errorMessage(err));
  }
  const r = await client.query<{ db: string }>('select current_database() as db');
  return r.rows[0]?.db ?? 'postgres';
}

/**
 * This instance's identity, as `sluice start` names it: `instance:` from the config, else
 * `<slot>@<system identifier>` (core/keyspace.ts instanceIdentity). `sluice check` and
 * `sluice teardown` must name it the same way to find its keys.
 */
export async function readInstanceName(configured: string | undefined, slot: string, client: pg.Client, warn: (err: string) => void): Promise<string> {
  return configured ?? instanceIdentity(slot, await readSystemIdentifier(client, warn));
}
