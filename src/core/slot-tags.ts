import calculateSlot from 'cluster-key-slot';

/**
 * A hash tag for every Redis Cluster slot: a short string whose CRC16 mod 16384 is that slot,
 * so `sluice:pos:<sink>:{tag}` lives in the slot it describes. Found by enumerating short
 * strings once (about 0.1 s for all 16,384), on first use. Pure: the Cluster apply lane places
 * its position keys with it, and aggregate sinks their group registries.
 */
let tags: string[] | null = null;

export function slotTag(slot: number): string {
  if (!tags) tags = computeTags();
  return tags[slot]!;
}

function computeTags(): string[] {
  const out: (string | undefined)[] = new Array(16384);
  let found = 0;
  for (let i = 0; found < 16384; i++) {
    const candidate = i.toString(36);
    const slot = calculateSlot(candidate);
    if (out[slot] === undefined) {
      out[slot] = candidate;
      found++;
    }
  }
  return out as string[];
}

/** The hash slot of a key (its hash tag's, when it has one), as Redis Cluster computes it. */
export function slotOf(key: string): number {
  return calculateSlot(key);
}
