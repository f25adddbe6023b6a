import type { Readable } from 'node:stream';
import type { CopyRows } from './copy-text.js';

/*
 * `COPY … TO STDOUT` on a pg client, its CopyData read straight from the socket into CopyRows:
 * one copy of each byte, no object per row. pg-copy-streams, which did this before, made a Buffer
 * per row (each row is a CopyData message) and concatenated them again per socket chunk: in a
 * backfill of small rows that was a sixth of Sluice's CPU and much of its garbage.
 *
 * The technique is pg-copy-streams' own (MIT): as the query is submitted, pg's 'data' listener is
 * taken off the socket and the socket is read here, message by message (a type byte, a 4-byte
 * length, the body), until CopyDone. What follows (CommandComplete, ReadyForQuery), or an
 * ErrorResponse, goes back to pg's own parser, which then calls this query's handlers.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-COPY
 */

const COPY_DATA = 0x64; // 'd'
const COPY_DONE = 0x63; // 'c'
/** messages that may come between CopyData (protocol-flow.html): skipped */
const BETWEEN = new Set([0x48 /* H CopyOutResponse */, 0x4e /* N NoticeResponse */, 0x53 /* S ParameterStatus */, 0x41 /* A NotificationResponse */]);

/** What pg hands a submittable query (pg/lib/connection.js): its socket and `query(text)`. */
interface PgConnection {
  readonly stream: Readable;
  query(text: string): void;
}

export class CopyOut {
  /** resolves once CopyDone is read, rejects with the server's error */
  readonly done: Promise<void>;
  private resolve!: () => void;
  private reject!: (err: Error) => void;
  private connection: PgConnection | null = null;
  private pgOnData: ((chunk: Buffer) => void) | null = null;
  private readonly onReadable = (): void => this.read();
  /** the message header being read: type byte and length */
  private readonly header = Buffer.alloc(5);
  private headerBytes = 0;
  /** body bytes of the current message still to come */
  private left = 0;
  private type = 0;
  private finished = false;

  constructor(
    readonly text: string,
    private readonly rows: CopyRows,
  ) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.done.catch(() => undefined);
  }

  /** Called by pg when the query's turn comes. */
  submit(connection: PgConnection): void {
    this.connection = connection;
    const stream = connection.stream;
    const listeners = stream.listeners('data') as ((chunk: Buffer) => void)[];
    if (listeners.length !== 1) throw new Error(`COPY: expected pg's one data listener on the socket, found ${listeners.length}`);
    this.pgOnData = listeners[0]!;
    stream.removeListener('data', this.pgOnData);
    stream.pause();
    stream.on('readable', this.onReadable);
    connection.query(this.text);
    this.read();
  }

  handleError(err: Error): void {
    this.finished = true;
    this.reject(err);
  }

  handleCommandComplete(): void {}

  handleReadyForQuery(): void {
    // an error without CopyDone was already handed to handleError
    if (!this.finished) this.reject(new Error('COPY ended without its data'));
  }

  private read(): void {
    const stream = this.connection?.stream;
    if (!stream || this.pgOnData === null) return;
    for (let chunk = stream.read() as Buffer | null; chunk !== null; chunk = stream.read() as Buffer | null) {
      const rest = this.parse(chunk);
      if (rest !== null) {
        this.detach(rest);
        return;
      }
    }
  }

  /** Takes in a chunk of the socket; returns what pg must read (from CopyDone or an unexpected message on), or null. */
  private parse(chunk: Buffer): Buffer | null {
    let at = 0;
    while (at < chunk.length) {
      if (this.left === 0 && this.headerBytes < 5) {
        const n = Math.min(5 - this.headerBytes, chunk.length - at);
        chunk.copy(this.header, this.headerBytes, at, at + n);
        this.headerBytes += n;
        at += n;
        if (this.headerBytes < 5) break;
        this.type = this.header[0]!;
        if (this.type !== COPY_DATA && !BETWEEN.has(this.type)) {
          // CopyDone, an ErrorResponse or anything else: pg's parser reads it, with all after it
          const rest = Buffer.concat([this.header, chunk.subarray(at)]);
          this.headerBytes = 0;
          return rest;
        }
        this.left = this.header.readUInt32BE(1) - 4;
        if (this.left === 0) this.headerBytes = 0;
        continue;
      }
      const n = Math.min(this.left, chunk.length - at);
      if (this.type === COPY_DATA) this.rows.pushRange(chunk, at, at + n);
      this.left -= n;
      at += n;
      if (this.left === 0) this.headerBytes = 0;
    }
    return null;
  }

  /** The socket goes back to pg's parser, with the bytes not read here. */
  private detach(rest: Buffer): void {
    const connection = this.connection!;
    const stream = connection.stream;
    const onData = this.pgOnData!;
    this.pgOnData = null;
    stream.removeListener('readable', this.onReadable);
    stream.addListener('data', onData);
    // done before pg reads on: CommandComplete and ReadyForQuery may be in `rest` already
    if (rest[0] === COPY_DONE) {
      this.finished = true;
      this.resolve();
    }
    onData(rest);
    // resumed after the handler: pg may itself pause the socket meanwhile (its backpressure)
    process.nextTick(() => stream.resume());
  }
}
