/**
 * Parser for Postgres's COPY TO STDOUT text format: one row per line, columns separated by tab,
 * NULL as \N, backslash escapes (\b \f \n \r \t \v \\, \ooo octal, \xhh hex).
 * https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.2
 *
 * Written by hand because no maintained npm package parses the text format; it is small and
 * fully specified. The values come out exactly as the type output functions print them — the
 * same text pgoutput sends — so backfilled rows and streamed rows encode identically.
 */
import type { Rows } from '../core/tuple.js';
import { giveBuffer, takeBuffer } from '../core/buffer-pool.js';

export type CopyRow = (string | null)[];

const TAB = 0x09;
const NL = 0x0a;
const BACKSLASH = 0x5c;

export class CopyTextParser {
  private rest: Buffer | null = null;

  /** Feeds a chunk; calls `onRow` for every complete line. */
  push(chunk: Buffer, onRow: (row: CopyRow) => void): void {
    let buf = chunk;
    if (this.rest) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(NL, start);
      if (nl === -1) break;
      onRow(parseRow(buf, start, nl));
      start = nl + 1;
    }
    if (start < buf.length) this.rest = buf.subarray(start);
  }

  /** Throws if input ended in the middle of a line. */
  end(): void {
    if (this.rest && this.rest.length > 0) throw new Error('COPY output ended in the middle of a row');
  }
}

/**
 * A chunk of COPY text kept as its bytes, one buffer outside the JavaScript heap, and each line's
 * end: rows are parsed when asked for (`row(i)`, anew on each call). A backfill chunk waits in this
 * form from its COPY until its batch is applied, instead of as thousands of arrays and strings the
 * garbage collector would copy and promote meanwhile.
 */
export class CopyRows implements Rows {
  /** from core/buffer-pool.ts, given back by `release()` */
  private buf: Buffer | null = takeBuffer(64 * 1024);
  private size = 0;
  /** where the next line starts */
  private lineStart = 0;
  /** the offset of each line's newline */
  private ends = new Uint32Array(1024);
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** Appends a chunk of COPY output. */
  push(chunk: Buffer): void {
    this.pushRange(chunk, 0, chunk.length);
  }

  /** Appends `src[start..end)` of COPY output (a CopyData message's body: copy-out.ts). */
  pushRange(src: Buffer, start: number, end: number): void {
    const n = end - start;
    let buf = this.live();
    if (this.size + n > buf.length) {
      const next = takeBuffer(Math.max(buf.length * 2, this.size + n));
      buf.copy(next, 0, 0, this.size);
      giveBuffer(buf);
      this.buf = buf = next;
    }
    const from = this.size;
    if (n > 64) src.copy(buf, from, start, end);
    // a row's few bytes: cheaper copied here than through a call into the runtime
    else for (let i = start, o = from; i < end; i++, o++) buf[o] = src[i]!;
    this.size += n;
    // the search must stop at `size`: past it lie the bytes of the buffer's last use
    if (n <= 256) {
      for (let at = from; at < this.size; at++) if (buf[at] === NL) this.lineEnd(at);
    } else {
      const view = buf.subarray(0, this.size);
      for (let at = view.indexOf(NL, from); at !== -1; at = view.indexOf(NL, at + 1)) this.lineEnd(at);
    }
  }

  private lineEnd(at: number): void {
    if (this.count === this.ends.length) {
      const ends = new Uint32Array(this.ends.length * 2);
      ends.set(this.ends);
      this.ends = ends;
    }
    this.ends[this.count++] = at;
    this.lineStart = at + 1;
  }

  /** The input is complete: throws if it ended in the middle of a line. */
  end(): void {
    if (this.lineStart !== this.size) throw new Error('COPY output ended in the middle of a row');
  }

  row(i: number): CopyRow {
    if (i < 0 || i >= this.count) throw new RangeError(`row ${i} of ${this.count}`);
    return parseRow(this.live(), i === 0 ? 0 : this.ends[i - 1]! + 1, this.ends[i]!);
  }

  lines(): { readonly buf: Buffer; readonly ends: Uint32Array } {
    return { buf: this.live(), ends: this.ends };
  }

  /** The rows' batch is applied: the buffer goes back to the pool (a read afterwards throws). */
  release(): void {
    if (this.buf !== null) giveBuffer(this.buf);
    this.buf = null;
  }

  private live(): Buffer {
    if (this.buf === null) throw new Error('COPY rows read after they were released');
    return this.buf;
  }
}

/**
 * One line: decoded as one string and split at its tabs when it holds no backslash (most lines:
 * one decoding instead of one per field; UTF-8 never has a tab byte inside a character), else
 * field by field with its escapes.
 */
function parseRow(buf: Buffer, start: number, end: number): CopyRow {
  const line = buf.toString('utf8', start, end);
  return line.includes('\\') ? parseLine(buf, start, end) : line.split('\t');
}

export function parseLine(buf: Buffer, start: number, end: number): CopyRow {
  const row: CopyRow = [];
  let fieldStart = start;
  // whether the field holds a backslash, seen on the way: a field without one is its text as it
  // is (most are), and no search past the field (an indexOf ran to the end of the chunk for each)
  let escaped = false;
  for (let i = start; i < end; i++) {
    const c = buf[i];
    if (c === TAB) {
      row.push(escaped ? parseField(buf, fieldStart, i) : buf.toString('utf8', fieldStart, i));
      fieldStart = i + 1;
      escaped = false;
    } else if (c === BACKSLASH) {
      escaped = true;
    }
  }
  row.push(escaped ? parseField(buf, fieldStart, end) : buf.toString('utf8', fieldStart, end));
  return row;
}

/** A field with at least one backslash: NULL, or its escapes decoded. */
function parseField(buf: Buffer, start: number, end: number): string | null {
  if (end - start === 2 && buf[start + 1] === 0x4e /* N */) return null;
  // Decode escapes into bytes first: octal/hex escapes may form multi-byte UTF-8 sequences.
  const out = Buffer.allocUnsafe(end - start);
  let o = 0;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c !== BACKSLASH || i + 1 >= end) {
      out[o++] = c;
      continue;
    }
    const n = buf[++i]!;
    switch (n) {
      case 0x62: out[o++] = 0x08; break; // \b
      case 0x66: out[o++] = 0x0c; break; // \f
      case 0x6e: out[o++] = 0x0a; break; // \n
      case 0x72: out[o++] = 0x0d; break; // \r
      case 0x74: out[o++] = 0x09; break; // \t
      case 0x76: out[o++] = 0x0b; break; // \v
      case 0x78: { // \xhh (one or two hex digits)
        let v = 0;
        let k = 0;
        while (k < 2 && i + 1 < end && isHex(buf[i + 1]!)) {
          v = v * 16 + hexVal(buf[++i]!);
          k++;
        }
        if (k === 0) out[o++] = 0x78;
        else out[o++] = v;
        break;
      }
      default:
        if (n >= 0x30 && n <= 0x37) { // \o, \oo, \ooo octal
          let v = n - 0x30;
          let k = 1;
          while (k < 3 && i + 1 < end && buf[i + 1]! >= 0x30 && buf[i + 1]! <= 0x37) {
            v = v * 8 + (buf[++i]! - 0x30);
            k++;
          }
          out[o++] = v & 0xff;
        } else {
          out[o++] = n; // \\ and any other escaped character stand for themselves
        }
    }
  }
  return out.toString('utf8', 0, o);
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function hexVal(c: number): number {
  return c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10;
}
