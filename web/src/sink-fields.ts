// The options of each sink type as the create/edit form shows them. The server's schema
// (src/config/sink-schema.ts) is what decides; test/unit/console-sink-fields.test.ts checks
// that this list names exactly its options, type by type, so the form cannot drift from it.
import type { ApiSinkAction, ApiSinkBlock, ApiSinkType } from '../../src/http/api-types.js';

export const SINK_TYPES: readonly { type: ApiSinkType; writes: string }[] = [
  { type: 'string', writes: 'one Redis string per row (the row, or a change message)' },
  { type: 'hash', writes: 'one hash per row, a field per column; or a field per row' },
  { type: 'list', writes: 'a list of changes' },
  { type: 'set', writes: 'a set with one member per row' },
  { type: 'zset', writes: 'a sorted set with one member per row, scored by a column' },
  { type: 'stream', writes: 'a Redis stream of changes' },
  { type: 'pubsub', writes: 'publishes every change on a channel' },
  { type: 'geo', writes: 'a geo set with one place per row, from two coordinate columns (GEOSEARCH)' },
  { type: 'hyperloglog', writes: 'a HyperLogLog counting the distinct elements the rows give' },
  { type: 'bitmap', writes: 'a bitmap with one bit per row, at an integer column\'s offset' },
  { type: 'aggregate', writes: 'counts and exact sums per group, as GROUP BY computes them: a hash per group, or a member per group in a sorted set' },
];

export const ACTIONS: readonly ApiSinkAction[] = ['insert', 'update', 'delete'];

/** The actions a new sink of this type takes when none are given. */
export function defaultActions(type: ApiSinkType): ApiSinkAction[] {
  // a HyperLogLog cannot take a delete back
  return type === 'list' ? ['insert'] : type === 'hyperloglog' ? ['insert', 'update'] : [...ACTIONS];
}

export type FieldName = keyof ApiSinkBlock & string;

export interface FieldSpec {
  name: FieldName;
  label: string;
  /** measures: `field: count, field: sum(column)`, sent as a map; measure: `count` or `sum(column)` */
  kind: 'template' | 'column' | 'number' | 'select' | 'measures' | 'measure';
  options?: readonly string[];
  /** the server's default, shown as the placeholder; undefined: required, or none */
  default?: string;
  required?: boolean;
  hint: string;
  /** shown only when this holds (e.g. `field` only in hash field mode) */
  when?: (values: Readonly<Record<string, string>>) => boolean;
}

const KEY_HINT = 'A template: {schema}, {table}, {pk} or a column, e.g. "order:{id}".';
const fieldMode = (v: Readonly<Record<string, string>>): boolean => v.mode === 'field';
const intoZset = (v: Readonly<Record<string, string>>): boolean => v.into === 'zset';

/** The options only this type has, in the order the form shows them. */
export const TYPE_FIELDS: Readonly<Record<ApiSinkType, readonly FieldSpec[]>> = {
  string: [
    { name: 'key', label: 'Key', kind: 'template', default: 'sluice:{table}:{pk}', hint: KEY_HINT },
    { name: 'value', label: 'Value', kind: 'select', options: ['record', 'message'], default: 'record', hint: 'record: the row as a JSON object; message: the change envelope (action, table, row).' },
  ],
  hash: [
    { name: 'key', label: 'Key', kind: 'template', default: 'sluice:{table}:{pk}', hint: KEY_HINT },
    { name: 'mode', label: 'Mode', kind: 'select', options: ['row', 'field'], default: 'row', hint: 'row: one hash per row, a field per column; field: one field per row in a shared hash.' },
    { name: 'field', label: 'Field', kind: 'template', required: true, hint: 'The row\'s field in the hash, e.g. "{pk}".', when: fieldMode },
    { name: 'value', label: 'Value', kind: 'select', options: ['record', 'message'], default: 'record', hint: 'What the field holds: the row, or the change envelope.', when: fieldMode },
  ],
  list: [
    { name: 'key', label: 'Key', kind: 'template', required: true, hint: KEY_HINT },
    { name: 'push', label: 'Push', kind: 'select', options: ['append', 'prepend'], default: 'append', hint: 'append: to the tail (RPUSH); prepend: to the head (LPUSH).' },
    { name: 'max_length', label: 'Max length', kind: 'number', hint: 'Keep only the newest N elements (empty: no limit).' },
    { name: 'value', label: 'Value', kind: 'select', options: ['message', 'record'], default: 'message', hint: 'message: the change envelope; record: the row.' },
  ],
  set: [
    { name: 'key', label: 'Key', kind: 'template', required: true, hint: KEY_HINT },
    { name: 'member', label: 'Member', kind: 'template', required: true, hint: 'The member standing for the row, e.g. "{sku}".' },
  ],
  zset: [
    { name: 'key', label: 'Key', kind: 'template', required: true, hint: KEY_HINT },
    { name: 'member', label: 'Member', kind: 'template', required: true, hint: 'The member standing for the row, e.g. "{id}".' },
    { name: 'score', label: 'Score column', kind: 'column', required: true, hint: 'The numeric column giving the member\'s score.' },
  ],
  stream: [
    { name: 'key', label: 'Key', kind: 'template', default: 'sluice:{schema}.{table}', hint: KEY_HINT },
    { name: 'max_length', label: 'Max length', kind: 'number', hint: 'Trim the stream to about N entries (empty: no limit).' },
    { name: 'max_age_ms', label: 'Max age (ms)', kind: 'number', hint: 'Trim entries older than this, counted back from the newest change\'s commit time (empty: no limit).' },
  ],
  pubsub: [
    { name: 'channel', label: 'Channel', kind: 'template', default: 'sluice:{table}:{pk}', hint: 'A template, like a key.' },
    { name: 'value', label: 'Value', kind: 'select', options: ['message', 'record'], default: 'message', hint: 'message: the change envelope; record: the row.' },
  ],
  geo: [
    { name: 'key', label: 'Key', kind: 'template', required: true, hint: KEY_HINT },
    { name: 'member', label: 'Member', kind: 'template', required: true, hint: 'The member standing for the row, e.g. "{id}".' },
    { name: 'longitude', label: 'Longitude column', kind: 'column', required: true, hint: 'The numeric column holding the longitude in degrees (-180 to 180).' },
    { name: 'latitude', label: 'Latitude column', kind: 'column', required: true, hint: 'The numeric column holding the latitude in degrees (-85.05112878 to 85.05112878).' },
  ],
  hyperloglog: [
    { name: 'key', label: 'Key', kind: 'template', required: true, hint: KEY_HINT },
    { name: 'element', label: 'Element', kind: 'template', required: true, hint: 'What the row adds to the count, e.g. "{user_id}". Deletes cannot be taken back.' },
  ],
  bitmap: [
    { name: 'key', label: 'Key', kind: 'template', required: true, hint: KEY_HINT },
    { name: 'offset', label: 'Offset column', kind: 'column', required: true, hint: 'The integer column giving the row\'s bit (0 to 2^32-1).' },
  ],
  aggregate: [
    { name: 'key', label: 'Group key', kind: 'template', required: true, hint: 'The group, e.g. "customer:{customer_id}:revenue". The table must be REPLICA IDENTITY FULL.' },
    { name: 'into', label: 'Into', kind: 'select', options: ['hash', 'zset'], default: 'hash', hint: 'hash: one hash per group, a field per measure; zset: one member per group in the sorted set of the key.' },
    { name: 'measures', label: 'Measures', kind: 'measures', hint: 'Hash fields and what they count: "orders: count, revenue: sum(amount)". Empty: "count: count".', when: (v) => !intoZset(v) },
    { name: 'member', label: 'Member', kind: 'template', required: true, hint: 'The group\'s member in the sorted set, e.g. "{player}".', when: intoZset },
    { name: 'score', label: 'Score', kind: 'measure', required: true, hint: '"count" or "sum(column)".', when: intoZset },
  ],
};

/** Options of every type the form shows under "More options". */
export const COMMON_FIELDS: readonly FieldSpec[] = [
  { name: 'expire_ms', label: 'Expire after (ms)', kind: 'number', hint: 'Time to live of the keys written, set again on every write (not for pubsub).' },
  { name: 'max_value_bytes', label: 'Max value bytes', kind: 'number', default: '16777216', hint: 'A larger value becomes a failed message instead of being written.' },
  { name: 'max_transaction_rows', label: 'Max transaction rows', kind: 'number', default: '20000', hint: 'Larger transactions are applied in chunks, each atomic on its own.' },
  { name: 'on_schema_change', label: 'On schema change', kind: 'select', options: ['backfill', 'ignore'], default: 'backfill', hint: 'When a table\'s columns change: copy the table again (backfill), or leave the rows until each changes (ignore).' },
  { name: 'failed_max_messages', label: 'Failed messages kept at most', kind: 'number', hint: 'Empty: apply.failed_max_messages (10000). A failure that does not fit is logged, not kept.' },
  { name: 'failed_max_bytes', label: 'Failed messages bytes at most', kind: 'number', hint: 'Empty: apply.failed_max_bytes (64 MiB).' },
  { name: 'failed_envelope_max_bytes', label: 'Largest envelope kept', kind: 'number', hint: 'Empty: apply.failed_envelope_max_bytes (1 MiB). A larger one keeps the reason and the row\'s key only.' },
];

/** Options the form has its own inputs for (name, type, connection, tables, actions, backfill, functions). */
export const FIXED_FIELDS: readonly FieldName[] = ['name', 'type', 'redis', 'tables', 'actions', 'backfill', 'filter', 'transform', 'route'];

export const FUNCTION_KINDS = ['filter', 'transform', 'route'] as const;
export type FunctionKind = (typeof FUNCTION_KINDS)[number];

export const FUNCTION_EXAMPLES: Readonly<Record<FunctionKind, string>> = {
  filter: `function filter(action, record, changes, metadata) {
  // true: the sink takes the change; false: it skips it
  return true;
}`,
  transform: `function transform(action, record, changes, metadata) {
  // what is stored instead of the row (a string or number as it is, anything else as JSON)
  return record;
}`,
  route: `function route(action, record, changes, metadata) {
  // where it goes: any of key, action, expire_ms (and the sink's member, score, field, channel)
  return { key: metadata.table_name + ':' + record.id };
}`,
};

export const FUNCTION_HINTS: Readonly<Record<FunctionKind, string>> = {
  filter: 'Decides which changes the sink takes: returns true or false. A bare expression works too: record.status === \'active\'.',
  transform: 'Changes what is written for the row: returns the value to store.',
  route: 'Chooses where a change is written: returns an object with the fields to change.',
};
