// A pub/sub subscriber on the main Redis (straight, not through the proxy) that keeps every
// message of the pubsub sinks' channels, in arrival order, for the checker: each change at most
// once, never one that was not committed, in commit order per channel. Messages sent while it
// was disconnected (the Redis restarted) are lost, as pub/sub is: that is allowed.

import { Redis } from 'ioredis';
import type { SinkSpec } from './sinks.js';

export interface Received {
  channel: string;
  message: string;
}

export class Subscriber {
  readonly received: Received[] = [];
  reconnects = 0;
  private client: Redis | undefined;

  constructor(
    private readonly port: number,
    private readonly patterns: string[],
  ) {}

  static patternsOf(specs: readonly SinkSpec[]): string[] {
    // the channel template's fixed start: "mp:{grp}" → "mp:*"
    return specs.filter((s) => s.type === 'pubsub').map((s) => `${String(s.options.channel).replace(/\{(?!\{).*$/, '')}*`);
  }

  async start(): Promise<void> {
    if (this.patterns.length === 0) return;
    const c = new Redis({ host: '127.0.0.1', port: this.port, retryStrategy: () => 100, autoResubscribe: true, maxRetriesPerRequest: null });
    c.on('error', () => {});
    c.on('reconnecting', () => this.reconnects++);
    c.on('pmessage', (_pattern: string, channel: string, message: string) => this.received.push({ channel, message }));
    await c.psubscribe(...this.patterns);
    this.client = c;
  }

  stop(): void {
    this.client?.disconnect();
  }
}
