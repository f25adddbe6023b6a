/**
 * Why reading the replication stream is paused (backpressure, row lookups, draining, a fatal
 * error): reading stops with the first reason and starts again once none is left.
 */
export class PauseReasons {
  private readonly reasons = new Set<string>();

  constructor(private readonly stream: { pause(): void; resume(): void }) {}

  add(reason: string): void {
    if (this.reasons.size === 0) this.stream.pause();
    this.reasons.add(reason);
  }

  delete(reason: string): void {
    if (!this.reasons.delete(reason)) return;
    if (this.reasons.size === 0) this.stream.resume();
  }
}
