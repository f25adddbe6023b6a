import { constants as bufferConstants } from 'node:buffer';
import { createConnection, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { encodeCommands } from './resp-writer.js';

/*
 * A minimal RESP2 connection for the apply lane's MULTI … EXEC. Hand-written because ioredis has
 * no API to write a pre-encoded buffer and read the raw replies: through ioredis every command of
 * a batch becomes a Command object with its own promise, socket write and `+QUEUED` parse, which
 * was a large share of Sluice's CPU and garbage (docs/benchmarks.md). Here a batch is one socket
 * write and its replies are parsed in bulk. Nothing is ever sent again by this class: a lost
 * connection rejects what was in flight, and the caller (the apply lane) decides what to do.
 */

/** An error reply (`-ERR …`). Not an Error: no stack trace is captured per reply. */
export class ReplyError {
  constructor(readonly message: string) {}
}

export type Reply = string | number | null | ReplyError | Reply[];

export { encodeCommands } from './resp-writer.js';

/** A status, error or integer line longer than this is refused (Redis's are a few hundred bytes at most). */
export const MAX_REPLY_LINE_BYTES = 1024 * 1024;
/** The longest bulk string a reply may hold: the longest string V8 can make of it. */
const MAX_BULK_BYTES = bufferConstants.MAX_STRING_LENGTH;
/** The most elements an array reply may claim (Redis's own limit is far below). */
const MAX_ARRAY_LENGTH = 2 ** 32;
/** Arrays nested deeper than this are refused (Redis's replies nest a few levels at most). */
export const MAX_REPLY_DEPTH = 1000;
const LENGTH_RE = /^(?:-1|\d+)$/;
const INTEGER_RE = /^-?\d+$/;

/**
 * A streaming RESP2 reply parser. `feed` takes chunks as they arrive, split anywhere; each whole
 * top-level reply goes to `onReply`. Array elements already parsed are kept between chunks, so a
 * large EXEC reply arriving in many chunks is not parsed again from its start.
 *
 * Input that is not RESP2 (an unknown type byte, a length or integer that is not a plain decimal
 * integer, a line or bulk string not ended by CRLF, a length no reply can have, a line of more than
 * MAX_REPLY_LINE_BYTES, arrays nested more than MAX_REPLY_DEPTH deep) throws an Error "Redis protocol error: …" at once; the parser is not
 * usable afterwards (the connection is dropped). Incomplete input only waits for more bytes,
 * without copying what it has again for each chunk (linear in the reply's size).
 */
export class ReplyParser {
  private buf: Buffer = Buffer.alloc(0);
  private chunks: Buffer[] = [];
  private chunked = 0;
  /** bytes needed before parsing is worth trying again (a bulk string's body) */
  private need = 0;
  /** the buffer ends inside a line without its CR: nothing changes until a chunk brings one */
  private inLine = false;
  private readonly stack: { items: Reply[]; left: number }[] = [];

  constructor(private readonly onReply: (reply: Reply) => void) {}

  feed(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.chunked += chunk.length;
    const have = this.buf.length + this.chunked;
    if (have < this.need) return;
    if (this.inLine && chunk.indexOf(13) < 0) {
      if (have > MAX_REPLY_LINE_BYTES) throw protocolError(`a line of more than ${MAX_REPLY_LINE_BYTES} bytes without CRLF`);
      return;
    }
    this.buf = this.buf.length === 0 && this.chunks.length === 1 ? chunk : Buffer.concat([this.buf, ...this.chunks]);
    this.chunks = [];
    this.chunked = 0;
    this.need = 0;
    this.inLine = false;
    const buf = this.buf;
    let pos = 0;
    while (pos < buf.length) {
      const type = buf[pos]!;
      // '+' '-' ':' '$' '*'
      if (type !== 43 && type !== 45 && type !== 58 && type !== 36 && type !== 42) throw protocolError(`unexpected byte ${type} at ${pos}`);
      // fast paths for what a pipelined MULTI is mostly made of (+OK, +QUEUED, short lengths),
      // read byte by byte; anything else, or a line not whole yet, takes the general path below
      if (type === 43) {
        if (buf[pos + 1] === 79 && buf[pos + 2] === 75 && buf[pos + 3] === 13 && buf[pos + 4] === 10) {
          pos += 5;
          this.emit('OK');
          continue;
        }
        if (pos + 8 < buf.length && buf[pos + 1] === 81 && buf[pos + 2] === 85 && buf[pos + 3] === 69 && buf[pos + 4] === 85 && buf[pos + 5] === 69 && buf[pos + 6] === 68 && buf[pos + 7] === 13 && buf[pos + 8] === 10) {
          pos += 9;
          this.emit('QUEUED');
          continue;
        }
      } else if (type === 36 || type === 42) {
        let i = pos + 1;
        let n = 0;
        let c = buf[i];
        // at most 8 digits: below every limit the general path checks (MAX_BULK_BYTES, MAX_ARRAY_LENGTH)
        while (c !== undefined && c >= 48 && c <= 57 && i - pos <= 8) {
          n = n * 10 + (c - 48);
          c = buf[++i];
        }
        if (i > pos + 1 && c === 13 && buf[i + 1] === 10) {
          const next = i + 2;
          if (type === 36) {
            if (next + n + 2 <= buf.length && buf[next + n] === 13 && buf[next + n + 1] === 10) {
              pos = next + n + 2;
              this.emit(buf.toString('utf8', next, next + n));
              continue;
            }
          } else if (n === 0) {
            pos = next;
            this.emit([]);
            continue;
          } else if (this.stack.length < MAX_REPLY_DEPTH) {
            this.stack.push({ items: [], left: n });
            pos = next;
            continue;
          }
        }
      }
      const eol = buf.indexOf(13, pos);
      if (eol < 0) {
        if (buf.length - pos > MAX_REPLY_LINE_BYTES) throw protocolError(`a line of more than ${MAX_REPLY_LINE_BYTES} bytes without CRLF`);
        this.inLine = true;
        break;
      }
      if (eol + 1 >= buf.length) break;
      if (buf[eol + 1] !== 10) throw protocolError(`a line not ended by CRLF at ${eol}`);
      let value: Reply;
      let next = eol + 2;
      if (type === 43) value = simple(buf, pos + 1, eol);
      else if (type === 45) value = new ReplyError(buf.toString('utf8', pos + 1, eol));
      else if (type === 58) {
        const text = buf.toString('latin1', pos + 1, eol);
        if (!INTEGER_RE.test(text)) throw protocolError(`bad integer ${JSON.stringify(clip(text))} at ${pos}`);
        value = Number(text) + 0; // -0 is 0
      } else {
        const text = buf.toString('latin1', pos + 1, eol);
        if (!LENGTH_RE.test(text)) throw protocolError(`bad length ${JSON.stringify(clip(text))} at ${pos}`);
        const n = Number(text);
        if (n === -1) value = null;
        else if (type === 36) {
          if (n > MAX_BULK_BYTES) throw protocolError(`a bulk string of ${text} bytes at ${pos}`);
          if (next + n + 2 > buf.length) {
            this.need = next + n + 2 - pos;
            break;
          }
          if (buf[next + n] !== 13 || buf[next + n + 1] !== 10) throw protocolError(`a bulk string of ${n} bytes not followed by CRLF at ${pos}`);
          value = buf.toString('utf8', next, next + n);
          next += n + 2;
        } else if (n > MAX_ARRAY_LENGTH) throw protocolError(`an array of ${text} elements at ${pos}`);
        else if (n === 0) value = [];
        else {
          if (this.stack.length >= MAX_REPLY_DEPTH) throw protocolError(`arrays nested more than ${MAX_REPLY_DEPTH} deep at ${pos}`);
          this.stack.push({ items: [], left: n });
          pos = next;
          continue;
        }
      }
      pos = next;
      this.emit(value);
    }
    this.buf = pos === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(pos));
  }

  private emit(value: Reply): void {
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (top === undefined) return this.onReply(value);
      top.items.push(value);
      if (--top.left > 0) return;
      this.stack.pop();
      value = top.items;
    }
  }
}

function protocolError(what: string): Error {
  return new Error(`Redis protocol error: ${what}`);
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

function simple(buf: Buffer, from: number, to: number): string {
  // the replies a MULTI is made of, without allocating a string for each
  if (to - from === 6 && buf[from] === 81 && buf[from + 1] === 85 && buf[from + 2] === 69 && buf[from + 3] === 85 && buf[from + 4] === 69 && buf[from + 5] === 68) return 'QUEUED';
  if (to - from === 2 && buf[from] === 79 && buf[from + 1] === 75) return 'OK';
  return buf.toString('utf8', from, to);
}

/** Where to connect, and how: the same settings as the ioredis client of the connection. */
export interface RespEndpoint {
  readonly host: string;
  readonly port: number;
  readonly tls?: ConnectionOptions | undefined;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly db?: number | undefined;
  readonly name?: string | undefined;
}

interface Waiter {
  readonly replies: Reply[];
  readonly count: number;
  readonly resolve: (r: Reply[]) => void;
  readonly reject: (e: Error) => void;
}

/**
 * One socket to Redis, opened on first use and again after it was lost (to wherever `endpoint()`
 * says then), with AUTH, SELECT and CLIENT SETNAME. Requests are answered in order.
 */
export class RespConnection {
  private socket: Socket | null = null;
  private where = '';
  private opening: Promise<void> | null = null;
  private waiters: Waiter[] = [];
  private closed = false;

  constructor(private readonly endpoint: () => RespEndpoint, private readonly connectTimeoutMs = 5000) {}

  /**
   * Writes `payload` (encoded commands; several buffers are written in turn, not copied into one)
   * once and resolves with its `count` replies, in order.
   */
  async request(payload: Buffer | readonly Buffer[], count: number): Promise<Reply[]> {
    if (this.opening) await this.opening.catch(() => undefined);
    const ep = this.endpoint();
    if (this.socket !== null && this.where !== `${ep.host}:${ep.port}`) this.destroy(new Error('Redis endpoint changed'));
    if (this.socket === null) await (this.opening ??= this.open(ep).finally(() => (this.opening = null)));
    return this.send(payload, count);
  }

  close(): void {
    this.closed = true;
    this.destroy(new Error('connection closed'));
  }

  private send(payload: Buffer | readonly Buffer[], count: number): Promise<Reply[]> {
    const socket = this.socket;
    if (socket === null || this.closed) return Promise.reject(new Error('Redis connection is closed'));
    return new Promise((resolve, reject) => {
      this.waiters.push({ replies: [], count, resolve, reject });
      if (Buffer.isBuffer(payload)) socket.write(payload);
      else {
        // one writev for the pieces
        socket.cork();
        for (const b of payload as readonly Buffer[]) socket.write(b);
        socket.uncork();
      }
    });
  }

  private async open(ep: RespEndpoint): Promise<void> {
    if (this.closed) throw new Error('Redis connection is closed');
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s: Socket = ep.tls ? tlsConnect({ host: ep.host, port: ep.port, ...ep.tls }) : createConnection({ host: ep.host, port: ep.port });
      const timer = setTimeout(() => s.destroy(new Error(`connect to Redis ${ep.host}:${ep.port} timed out`)), this.connectTimeoutMs);
      s.once(ep.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        s.off('error', onError);
        resolve(s);
      });
      const onError = (err: Error): void => {
        clearTimeout(timer);
        reject(err);
      };
      s.once('error', onError);
    });
    if (this.closed) {
      socket.destroy();
      throw new Error('Redis connection is closed');
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    const parser = new ReplyParser((r) => this.onReply(r));
    // events of a socket given up already (endpoint changed) must not touch its successor
    const lost = (err: Error): void => {
      if (this.socket === socket) this.destroy(err);
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.feed(chunk);
      } catch (err) {
        lost(err as Error);
      }
    });
    socket.on('error', lost);
    socket.on('close', () => lost(new Error('Redis connection lost')));
    this.socket = socket;
    this.where = `${ep.host}:${ep.port}`;
    try {
      // as ioredis does: AUTH [user] password, SELECT db, CLIENT SETNAME (its failure ignored)
      const hello: string[][] = [];
      if (ep.username) hello.push(['AUTH', ep.username, ep.password ?? '']);
      else if (ep.password) hello.push(['AUTH', ep.password]);
      if (ep.db) hello.push(['SELECT', String(ep.db)]);
      if (ep.name) hello.push(['CLIENT', 'SETNAME', ep.name]);
      if (hello.length === 0) return;
      const replies = await this.send(encodeCommands(hello), hello.length);
      for (let i = 0; i < replies.length; i++) {
        const r = replies[i];
        if (!(r instanceof ReplyError) || hello[i]![0] === 'CLIENT') continue;
        // a password the server does not need: ioredis only warns
        if (hello[i]![0] === 'AUTH' && /no password is set|without any password configured/.test(r.message)) continue;
        throw new Error(r.message);
      }
    } catch (err) {
      // never used without its AUTH and SELECT
      if (this.socket === socket) this.destroy(err as Error);
      throw err;
    }
  }

  private onReply(r: Reply): void {
    const w = this.waiters[0];
    if (w === undefined) return this.destroy(new Error('Redis sent a reply nobody asked for'));
    w.replies.push(r);
    if (w.replies.length === w.count) {
      this.waiters.shift();
      w.resolve(w.replies);
    }
  }

  private destroy(err: Error): void {
    const socket = this.socket;
    this.socket = null;
    socket?.destroy();
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }
}
