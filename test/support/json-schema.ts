/**
 * A small JSON Schema (2020-12) checker for the OpenAPI document's response schemas: `$ref` into
 * the document, `type` (one or a list), `const`, `enum`, `required`, `properties`,
 * `additionalProperties`, `items`, `pattern`, `oneOf`, `anyOf`, `allOf`. Other keywords
 * (formats, bounds, descriptions) are not checked. Returns the mistakes, each with its path.
 */
export type JsonSchema = Record<string, unknown>;

export function checkSchema(schema: JsonSchema, value: unknown, root: unknown, path = '$'): string[] {
  if (typeof schema.$ref === 'string') {
    const target = resolve(root, schema.$ref);
    if (target === undefined) return [`${path}: $ref ${schema.$ref} does not resolve`];
    return checkSchema(target, value, root, path);
  }
  const errors: string[] = [];
  if (schema.type !== undefined) {
    const types = [schema.type].flat() as string[];
    if (!types.some((t) => isType(t, value))) return [`${path}: ${JSON.stringify(value)?.slice(0, 80)} is not ${types.join(' or ')}`];
  }
  if ('const' in schema && JSON.stringify(schema.const) !== JSON.stringify(value)) errors.push(`${path}: must be ${JSON.stringify(schema.const)}`);
  if (Array.isArray(schema.enum) && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) errors.push(`${path}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if (typeof schema.pattern === 'string' && typeof value === 'string' && !new RegExp(schema.pattern, 'u').test(value)) errors.push(`${path}: ${JSON.stringify(value)} does not match ${schema.pattern}`);
  if (isObject(value)) {
    for (const key of (schema.required as string[] | undefined) ?? []) if (!(key in value)) errors.push(`${path}: the required field "${key}" is missing`);
    const props = (schema.properties ?? {}) as Record<string, JsonSchema>;
    for (const [key, v] of Object.entries(value)) {
      const sub = props[key];
      if (sub) errors.push(...checkSchema(sub, v, root, `${path}.${key}`));
      else if (schema.additionalProperties === false) errors.push(`${path}: "${key}" is not a documented field`);
      else if (isObject(schema.additionalProperties)) errors.push(...checkSchema(schema.additionalProperties, v, root, `${path}.${key}`));
    }
  }
  if (Array.isArray(value) && isObject(schema.items)) value.forEach((v, i) => errors.push(...checkSchema(schema.items as JsonSchema, v, root, `${path}[${i}]`)));
  if (Array.isArray(schema.allOf)) for (const s of schema.allOf as JsonSchema[]) errors.push(...checkSchema(s, value, root, path));
  for (const kw of ['oneOf', 'anyOf'] as const) {
    if (!Array.isArray(schema[kw])) continue;
    const results = (schema[kw] as JsonSchema[]).map((s) => checkSchema(s, value, root, path));
    const matching = results.filter((r) => r.length === 0).length;
    if (kw === 'oneOf' ? matching !== 1 : matching === 0) {
      errors.push(`${path}: matches ${matching} of the ${kw} schemas${matching === 0 ? `: ${results.map((r) => r[0]).join(' | ')}` : ''}`);
    }
  }
  return errors;
}

function resolve(root: unknown, ref: string): JsonSchema | undefined {
  if (!ref.startsWith('#/')) return undefined;
  let at: unknown = root;
  for (const part of ref.slice(2).split('/')) at = isObject(at) ? at[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  return isObject(at) ? at : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isType(type: string, v: unknown): boolean {
  switch (type) {
    case 'null':
      return v === null;
    case 'object':
      return isObject(v);
    case 'array':
      return Array.isArray(v);
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'number':
      return typeof v === 'number';
    default:
      return typeof v === type;
  }
}
