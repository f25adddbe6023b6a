/*
 * What a Cluster lane wrote last in Redis, to notice lost writes (pure; cluster-apply-lane.ts
 * writes and reads). Every bookkeeping write of the lane is a `SET … GET` (or `GET` and `SET`)
 * whose value before must be what the lane wrote there last:
 *
 *   - a slot's batch marker, written by its MULTI and by the probe of its master;
 *   - a sink's position (`sluice:pos:<sink>`), written once every slot has a batch.
 *
 * Anything else found there means Redis lost writes: a failover to a replica that lacked them, a
 * restart without persistence, a FLUSHALL. A write whose reply was lost may have run: what it
 * wrote is then no loss either, when found later.
 *
 * The probe: each write to a master ends with `SET <marker of its probe slot> <batch id> GET`,
 * the probe slot being the first slot the master serves, kept while it does. A replica holds a
 * prefix of its master's writes, so a failover to one that lacked any of a write lacks its probe
 * too, and the next write to the new master finds an older marker there, whatever slots the lost
 * writes were in.
 */

/** A lost write: where, what the lane wrote there last, and what Redis held instead. */
export interface LostWrite {
  readonly slot?: number;
  readonly key?: string;
  readonly expected: string | null;
  readonly found: string | null;
}

export class WrittenLast {
  /** per slot, the batch id last written in its marker (as loaded, then as written) */
  private readonly markers = new Map<number, string | null>();
  /** per slot, a batch id a write whose reply was lost may have left in its marker */
  private readonly unsure = new Map<number, string>();
  /** per sink, the value of its position key (as loaded, then as written) */
  private readonly positions = new Map<string, string | null>();
  /** per master ("host:port"), its probe slot */
  private readonly probes = new Map<string, number>();

  constructor(private readonly onLoss: (lost: LostWrite) => void) {}

  /** A marker found when the lane loaded. */
  loadedMarker(slot: number, value: string): void {
    this.markers.set(slot, value);
  }

  /** A sink's position found when the lane loaded (null: none). */
  loadedPosition(sink: string, value: string | null): void {
    this.positions.set(sink, value);
  }

  /** A MULTI whose reply was lost ran (its marker says so): the marker holds `batchId`. */
  ran(slot: number, batchId: string): void {
    this.markers.set(slot, batchId);
    this.unsure.delete(slot);
  }

  /** A write of the slot's marker whose reply was lost: it may hold `batchId` from now on. */
  maybeRan(slot: number, batchId: string): void {
    this.unsure.set(slot, batchId);
  }

  /** The slot's marker was set to `batchId` and held `found` before (this batch's own id is no loss: an attempt whose reply was lost). */
  markerFound(slot: number, found: string | null, batchId: string): void {
    const expected = this.markers.get(slot) ?? null;
    const unsure = this.unsure.get(slot);
    if (found !== expected && found !== batchId && (unsure === undefined || found !== unsure)) this.onLoss({ slot, expected, found });
    this.ran(slot, batchId);
  }

  /** The sink's position key (`key`) was set to `value` and held `found` before. */
  positionFound(sink: string, key: string, found: string | null, value: string): void {
    const expected = this.positions.get(sink) ?? null;
    if (found !== expected && found !== value) this.onLoss({ key, expected, found });
    this.positions.set(sink, value);
  }

  forgetSink(sink: string): void {
    this.positions.delete(sink);
  }

  /** The probe slot of a master (`owner`: the slot map), or -1 if it serves none. */
  probeOf(node: string, owner: (slot: number) => string | undefined): number {
    const kept = this.probes.get(node);
    if (kept !== undefined && owner(kept) === node) return kept;
    this.probes.delete(node);
    for (let slot = 0; slot < 16384; slot++) {
      if (owner(slot) !== node) continue;
      this.probes.set(node, slot);
      return slot;
    }
    return -1;
  }

  /** A master's probe was refused (its slot moving): another is chosen next time. */
  probeRefused(node: string): void {
    this.probes.delete(node);
  }

  /** The masters that serve slots now: the others' probes go. */
  keepProbes(serving: ReadonlySet<string>): void {
    for (const node of this.probes.keys()) if (!serving.has(node)) this.probes.delete(node);
  }

  /** the masters with a probe slot, and theirs (status and tests) */
  get probeSlots(): ReadonlyMap<string, number> {
    return this.probes;
  }
}
