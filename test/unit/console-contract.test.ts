// The console is written against src/http/api-types.ts and lists the sink options in
// web/src/sink-fields.ts. Both are checked here against what the server really has: the types
// both ways at compile time (tsc), the form's options against the sink schema at run time.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import type { Delivery } from '../../src/runtime/deliveries.js';
import type { BackfillView } from '../../src/backfill/backfill-manager.js';
import type { RedisTestResult } from '../../src/http/redis-routes.js';
import type { Problem } from '../../src/runtime/health.js';
import type { FailedMessage, FailedStoreView } from '../../src/plan/failed-messages.js';
import type { ApiBackfill, ApiDelivery, ApiFailedMessage, ApiFailedStore, ApiHealthProblem, ApiRedisTest } from '../../src/http/api-types.js';
import { sinkSchema, SINK_TYPES } from '../../src/config/sink-schema.js';
import { parseSinkBlock } from '../../src/config/sink-block.js';
import { COMMON_FIELDS, defaultActions, FIXED_FIELDS, SINK_TYPES as FORM_TYPES, TYPE_FIELDS, type FieldSpec } from '../../web/src/sink-fields.js';

/** true when each is assignable to the other (readonly aside) */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const same = <A, B>(ok: Same<A, B>): boolean => ok;
const assignable = <A, B>(ok: [A] extends [B] ? true : false): boolean => ok;

describe('the console and the server agree', () => {
  test('the API types are the server\'s (checked by tsc)', () => {
    assert.ok(same<Delivery, ApiDelivery>(true));
    assert.ok(same<BackfillView, ApiBackfill>(true));
    assert.ok(same<RedisTestResult, ApiRedisTest>(true));
    assert.ok(same<Problem, ApiHealthProblem>(true));
    assert.ok(same<FailedStoreView, ApiFailedStore>(true));
    assert.ok(assignable<FailedMessage, ApiFailedMessage>(true));
  });

  // every option of each sink type, as the schema has it
  const schemaTypes = new Map<string, Record<string, z.ZodType>>();
  for (const option of sinkSchema.options) {
    const object = (option instanceof z.ZodPipe ? option.in : option) as unknown as z.ZodObject;
    const type = (object.shape.type as z.ZodLiteral<string>).value;
    schemaTypes.set(type, object.shape as Record<string, z.ZodType>);
  }

  test('the form offers every sink type, and every option of each, no more', () => {
    assert.deepEqual(FORM_TYPES.map((t) => t.type), [...SINK_TYPES], 'web/src/sink-fields.ts SINK_TYPES');
    for (const [type, shape] of schemaTypes) {
      const form = [...FIXED_FIELDS, ...TYPE_FIELDS[type as keyof typeof TYPE_FIELDS].map((f) => f.name), ...COMMON_FIELDS.map((f) => f.name)];
      const options = Object.keys(shape);
      const missing = options.filter((o) => !form.includes(o as (typeof form)[number]));
      const extra = form.filter((o) => !options.includes(o));
      assert.deepEqual(missing, [], `the console's form (web/src/sink-fields.ts) lacks these options of ${type} sinks`);
      assert.deepEqual(extra, [], `the console's form offers options ${type} sinks do not have`);
    }
  });

  /** the enum a select stands for, unwrapped from its default or optional */
  const enumValues = (t: z.ZodType): string[] | null => {
    let inner: unknown = t;
    while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) inner = (inner as z.ZodDefault<z.ZodType>).unwrap();
    return inner instanceof z.ZodEnum ? (inner.options as string[]) : null;
  };

  test('choices and defaults shown are the schema\'s', () => {
    for (const [type, shape] of schemaTypes) {
      const fields: FieldSpec[] = [...TYPE_FIELDS[type as keyof typeof TYPE_FIELDS], ...COMMON_FIELDS];
      // the smallest valid block of this type: every required option filled in
      const block: Record<string, unknown> = { name: 'x', type, tables: ['public.t'] };
      for (const f of fields) if (f.required && (!f.when || f.when({}))) block[f.name] = f.kind === 'column' ? 'n' : '{id}';
      const parsed = parseSinkBlock(block, { redisNames: ['main'] });
      assert.ok(parsed.ok, `${type}: ${JSON.stringify(parsed.ok ? null : parsed.problems)}`);
      const sink = parsed.sink as unknown as Record<string, unknown>;
      assert.deepEqual(sink.actions, defaultActions(type as keyof typeof TYPE_FIELDS), `${type}: default actions`);
      for (const f of fields) {
        if (f.kind === 'select') assert.deepEqual([...(f.options ?? [])].sort(), [...(enumValues(shape[f.name]!) ?? [])].sort(), `${type}.${f.name}: choices`);
        if (f.default !== undefined && (!f.when || f.when({}))) assert.equal(String(sink[f.name]), f.default, `${type}.${f.name}: the default the form shows`);
      }
    }
  });
});
