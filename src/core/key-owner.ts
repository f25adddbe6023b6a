import { OWN_KEY_PREFIXES } from './keyspace.js';

/**
 * Whose one of Sluice's own keys is (core/keyspace.ts), for `sluice teardown --keys` on a Redis
 * that several instances share: only the keys of this instance go. Pure.
 *
 * - `sluice:batch:<instance>:<redis>[:{tag}]`: the instance's batch markers. The form from before
 *   instances had identities, `sluice:batch:<redis>[:{tag}]`, is this configuration's when
 *   `<redis>` is one of its connections (it is renamed at the first start of a newer version).
 * - every other kind is per sink, `sluice:<kind>:<sink>[:…]`: this instance's when the sink's
 *   name is its own on that Redis (`ours`).
 * A key that is not one of Sluice's own, or of a kind this version does not know, is nobody's.
 */
export function ownKeyOf(key: string, ours: { instance: string; connections: ReadonlySet<string>; sinks: ReadonlySet<string> }): boolean {
  if (!OWN_KEY_PREFIXES.some((p) => key.startsWith(p))) return false;
  const kindEnd = key.indexOf(':', 'sluice:'.length);
  const kind = key.slice('sluice:'.length, kindEnd);
  const rest = key.slice(kindEnd + 1);
  if (kind === 'batch') {
    if (rest.startsWith(`${ours.instance}:`)) return true;
    // the older form: the connection's name (never holding `:`), alone or before a slot's hash tag
    return ours.connections.has(rest.replace(/:\{[0-9a-z]+\}$/, ''));
  }
  const colon = rest.indexOf(':');
  return ours.sinks.has(colon < 0 ? rest : rest.slice(0, colon));
}

/**
 * The sink names that are this instance's on one Redis: those whose `sluice:owner:<sink>` names it,
 * and the configured ones nobody has claimed yet. A configured sink that another instance owns
 * there is not (its keys are that instance's).
 */
export function ownSinks(owners: ReadonlyMap<string, string>, configured: Iterable<string>, instance: string): Set<string> {
  const out = new Set<string>();
  for (const [sink, owner] of owners) if (owner === instance) out.add(sink);
  for (const sink of configured) if (!owners.has(sink)) out.add(sink);
  return out;
}
