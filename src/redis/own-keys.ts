/** Keys Sluice keeps for itself: never removed by a TRUNCATE or counted as data. */
const OWN_PREFIXES = ['sluice:pos:', 'sluice:batch:', 'sluice:failed:', 'sluice:backfill:', 'sluice:idx:'];

export function isOwnKey(key: string): boolean {
  return OWN_PREFIXES.some((p) => key.startsWith(p));
}
