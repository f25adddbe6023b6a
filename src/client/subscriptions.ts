import type { Conn } from './connection.js';
import { redisError } from './errors.js';

type Listener = (message: string) => void;

interface Channel {
  readonly listeners: Set<Listener>;
  /** settles once Redis confirmed the SUBSCRIBE */
  readonly ready: Promise<void>;
}

/**
 * Pub/sub for the client: one subscriber connection (created on first use, owned by the client),
 * channels shared by every listener in the process and unsubscribed when the last one leaves.
 * `add` resolves once Redis has confirmed the subscription, so that a read made after it cannot
 * miss a message published after the read.
 *
 * ioredis subscribes again by itself after a reconnect; messages published while the connection
 * was down are lost, so `onReconnect` runs then (the client reads what it waits for again).
 */
export class Subscriptions {
  private conn: Conn | null = null;
  private readonly channels = new Map<string, Channel>();
  private connectedOnce = false;
  lastError: Error | null = null;

  constructor(
    private readonly create: () => Conn,
    private readonly onReconnect: () => void,
  ) {}

  /** Listens to `channel`; resolves (once subscribed) with a function that stops listening. */
  async add(channel: string, listener: Listener): Promise<() => void> {
    let ch = this.channels.get(channel);
    if (!ch) {
      const conn = this.connection();
      const created: Channel = {
        listeners: new Set(),
        ready: conn.subscribe(channel).then(
          () => undefined,
          (err: unknown) => {
            if (this.channels.get(channel) === created) this.channels.delete(channel);
            throw redisError(err, `subscribing to ${channel}`);
          },
        ),
      };
      ch = created;
      this.channels.set(channel, ch);
    }
    ch.listeners.add(listener);
    const entry = ch;
    const remove = (): void => {
      if (!entry.listeners.delete(listener) || entry.listeners.size > 0 || this.channels.get(channel) !== entry) return;
      this.channels.delete(channel);
      this.conn?.unsubscribe(channel).catch(() => undefined);
    };
    try {
      await entry.ready;
    } catch (err) {
      entry.listeners.delete(listener);
      throw err;
    }
    return remove;
  }

  /** Closes the subscriber connection (if any); every channel is forgotten. */
  take(): Conn | null {
    const c = this.conn;
    this.conn = null;
    this.channels.clear();
    return c;
  }

  private connection(): Conn {
    if (this.conn) return this.conn;
    const c = this.create();
    c.on('error', (err: Error) => {
      this.lastError = err;
    });
    c.on('ready', () => {
      // after a reconnect ioredis subscribes again before 'ready' is emitted: a PING behind those
      // SUBSCRIBEs returns once they are in place, so what is read then cannot miss a message
      if (this.connectedOnce) c.call('PING').then(this.onReconnect, this.onReconnect);
      this.connectedOnce = true;
    });
    c.on('message', (channel: string, message: string) => {
      const ch = this.channels.get(channel);
      if (!ch) return;
      for (const l of ch.listeners) l(message);
    });
    this.conn = c;
    return c;
  }
}
