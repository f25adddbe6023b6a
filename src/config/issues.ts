// zod issues → problems with a data path and a message a user can act on. Shared by the config
// file (load.ts) and the sink blocks of the API (sink-block.ts), so both read the same.
import type { z } from 'zod';

export interface SchemaProblem {
  /** data path of the value concerned, e.g. ['sinks', 0, 'expire_ms'] */
  readonly path: readonly (string | number)[];
  readonly message: string;
  /** true for an unknown key (the path then ends with that key) */
  readonly unknownKey: boolean;
}

/** Validates `data` with `schema`, using the error map below: the value, or every problem found. */
export function validate<S extends z.ZodType>(
  schema: S,
  data: unknown,
): { success: true; data: z.output<S> } | { success: false; problems: SchemaProblem[] } {
  const result = schema.safeParse(data, { error: issueMessage });
  return result.success ? { success: true, data: result.data } : { success: false, problems: schemaProblems(result.error.issues) };
}

/** One problem per issue, and one per key of an unknown-keys issue (whose message has one line per key). */
export function schemaProblems(issues: readonly z.core.$ZodIssue[]): SchemaProblem[] {
  const out: SchemaProblem[] = [];
  for (const issue of issues) {
    const path = issue.path.filter((s): s is string | number => typeof s !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      const messages = issue.message.split('\n');
      issue.keys.forEach((key, i) => out.push({ path: [...path, key], message: messages[i] ?? `unknown key "${key}"`, unknownKey: true }));
    } else {
      out.push({ path, message: issue.message, unknownKey: false });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Messages for zod's built-in issues

function describeInput(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  return String(v);
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  object: 'a mapping',
  record: 'a mapping',
  array: 'a list',
};

/** zod error map for the config schemas. */
export function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  const input: unknown = iss.input;
  switch (iss.code) {
    case 'invalid_type': {
      if (input === undefined) return 'is required';
      if (iss.expected === 'int' && typeof input === 'number') return `must be an integer (got ${input})`;
      return `must be ${EXPECTED[iss.expected] ?? iss.expected} (got ${describeInput(input)})`;
    }
    case 'invalid_value':
      return `must be one of ${iss.values.map(String).join(', ')} (got ${describeInput(input)})`;
    case 'invalid_union': {
      if (iss.note === 'No matching discriminator' && typeof iss.discriminator === 'string') {
        const options = Array.isArray(iss.options) ? (iss.options as unknown[]).map(String).join(', ') : '';
        const got = input !== null && typeof input === 'object' ? (input as Record<string, unknown>)[iss.discriminator] : undefined;
        return got === undefined ? `is required: one of ${options}` : `must be one of ${options} (got ${describeInput(got)})`;
      }
      return undefined;
    }
    case 'too_small': {
      const min = Number(iss.minimum);
      if (iss.origin === 'array' || iss.origin === 'set') return `must have at least ${min} item${min === 1 ? '' : 's'}`;
      if (iss.origin === 'string') return min === 1 ? 'must not be empty' : `must be at least ${min} characters long`;
      if (iss.inclusive === false && min === 0) return `must be greater than 0 (got ${describeInput(input)})`;
      return `must be ${iss.inclusive === false ? 'greater than' : 'at least'} ${min} (got ${describeInput(input)})`;
    }
    case 'too_big': {
      const max = Number(iss.maximum);
      if (iss.origin === 'array' || iss.origin === 'set') return `must have at most ${max} items`;
      if (iss.origin === 'string') return `must be at most ${max} characters long`;
      return `must be ${iss.inclusive === false ? 'less than' : 'at most'} ${max} (got ${describeInput(input)})`;
    }
    default:
      return undefined;
  }
}
