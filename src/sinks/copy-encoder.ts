import type { TableInfo } from '../core/change.js';
import type { TemplatePart } from '../core/template.js';
import { codecKind, toJson, type CodecKind } from '../core/values.js';
import { MAX_KEY_BYTES, type CopyRowEncoder } from './sink.js';

export type { CopyRowEncoder };

const TAB = 0x09;
const BACKSLASH = 0x5c;
const QUOTE = 0x22;
/** longer lines go the generic way (the scratch buffers stay small) */
const MAX_LINE = 64 * 1024;

type KeyPiece = { readonly bytes: Buffer } | { readonly columns: readonly number[] };

interface Column {
  /** `"name":`, with a comma before it but for the first */
  readonly name: Buffer;
  readonly kind: CodecKind;
  readonly convert: (text: string) => string;
}

/**
 * The string sink's `SET key json [PX ms]` of a `read` message with `value: record`, or null when
 * this table's rows cannot be encoded from their bytes (a key column whose text is not the key's).
 */
export function copySetEncoder(table: TableInfo, key: readonly TemplatePart[], maxValueBytes: number, expireMs: number | undefined): CopyRowEncoder | null {
  const pieces: KeyPiece[] = [];
  for (const p of key) {
    if (p.kind === 'text') pieces.push({ bytes: Buffer.from(p.text) });
    else if (p.kind === 'schema') pieces.push({ bytes: Buffer.from(table.schema) });
    else if (p.kind === 'table') pieces.push({ bytes: Buffer.from(table.name) });
    else {
      const name = p.kind === 'column' ? p.name : null;
      const columns = name === null ? table.keyIndexes : [table.columns.findIndex((c) => c.name === name)];
      if (columns.length === 0 || columns.some((i) => i < 0)) return null; // the sink's own error
      // the key holds the column's text as it is only for these (toPlain)
      if (columns.some((i) => !['int', 'string'].includes(codecKind(table.columns[i]!.codec)))) return null;
      pieces.push({ columns });
    }
  }
  const columns: Column[] = table.columns.map((c, i) => ({ name: Buffer.from((i > 0 ? ',' : '') + c.jsonName), kind: codecKind(c.codec), convert: (t) => toJson(c.codec, t) }));
  const n = columns.length;
  const head = Buffer.from(expireMs ? '*5\r\n$3\r\nSET\r\n' : '*3\r\n$3\r\nSET\r\n');
  const ttl = expireMs ? String(expireMs) : '';
  const tail = Buffer.from(expireMs ? `$2\r\nPX\r\n$${ttl.length}\r\n${ttl}\r\n` : '');
  const starts = new Int32Array(n);
  const ends = new Int32Array(n);
  const k = new Scratch(1024);
  const v = new Scratch(4096);

  return (line, start, end, out) => {
    if (end - start > MAX_LINE) return false;
    // fields, and whether the line is plain: no NULL (\N), no escape, ASCII only
    let f = 0;
    starts[0] = start;
    for (let i = start; i < end; i++) {
      const c = line[i]!;
      if (c === TAB) {
        ends[f] = i;
        if (++f === n) return false;
        starts[f] = i + 1;
      } else if (c === BACKSLASH || c > 0x7e) return false;
    }
    if (f !== n - 1) return false;
    ends[f] = end;

    k.reset(end - start + 256);
    for (const p of pieces) {
      if ('bytes' in p) k.bytes(p.bytes, 0, p.bytes.length);
      else
        for (let j = 0; j < p.columns.length; j++) {
          if (j > 0) k.byte(0x3a); // ':' between the {pk} columns
          const c = p.columns[j]!;
          k.bytes(line, starts[c]!, ends[c]!);
        }
    }
    if (k.size === 0 || k.size > MAX_KEY_BYTES) return false;

    v.reset(6 * (end - start) + 64 * n + 16);
    v.byte(0x7b); // {
    for (let c = 0; c < n; c++) {
      const col = columns[c]!;
      const s = starts[c]!;
      const e = ends[c]!;
      v.bytes(col.name, 0, col.name.length);
      switch (col.kind) {
        case 'int':
        case 'json':
          v.bytes(line, s, e);
          break;
        case 'number': {
          // NaN and ±Infinity are JSON strings: the generic way
          const first = line[s];
          if (first === 0x4e || first === 0x49 || (first === 0x2d && line[s + 1] === 0x49)) return false;
          v.bytes(line, s, e);
          break;
        }
        case 'bool':
          v.ascii(line[s] === 0x74 ? 'true' : 'false');
          break;
        case 'string':
          v.quoted(line, s, e);
          break;
        case 'timestamptz': {
          // the common form, as timestamptzToIso: "2026-11-22 11:11:03.123456+00" → "2026-11-22T11:11:03.123456Z"
          if (e - s < 22 || line[s + 4] !== 0x2d || line[e - 3] !== 0x2b || line[e - 2] !== 0x30 || line[e - 1] !== 0x30) return false;
          v.byte(QUOTE);
          v.bytes(line, s, s + 10);
          v.byte(0x54); // T
          v.bytes(line, s + 11, e - 3);
          v.byte(0x5a); // Z
          v.byte(QUOTE);
          break;
        }
        default:
          v.ascii(col.convert(line.toString('latin1', s, e)));
      }
    }
    v.byte(0x7d); // }
    if (v.size > maxValueBytes) return false;

    out.raw(head);
    out.bulkBytes(k.buf, 0, k.size);
    out.bulkBytes(v.buf, 0, v.size);
    if (tail.length > 0) out.raw(tail);
    return true;
  };
}

const HEX = '0123456789abcdef';
/** up to this many bytes are copied in JavaScript */
const SHORT = 64;

/** A reused buffer a row's key or value is written into. */
class Scratch {
  buf: Buffer;
  size = 0;

  constructor(capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  /** empties it, with room for at least `n` bytes */
  reset(n: number): void {
    this.size = 0;
    if (this.buf.length < n) this.buf = Buffer.allocUnsafe(Math.max(n, 2 * this.buf.length));
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.size++] = b;
  }

  bytes(src: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(n);
    const buf = this.buf;
    if (n > SHORT) src.copy(buf, this.size, start, end);
    // a short copy is cheaper here than a call into the runtime
    else for (let i = start, o = this.size; i < end; i++, o++) buf[o] = src[i]!;
    this.size += n;
  }

  /** ASCII text (what a codec returns for ASCII input) */
  ascii(s: string): void {
    this.ensure(3 * s.length);
    this.size += this.buf.write(s, this.size, 'utf8');
  }

  /** ASCII bytes as a JSON string, escaped as JSON.stringify does (no backslash can be among them) */
  quoted(src: Buffer, start: number, end: number): void {
    this.ensure(6 * (end - start) + 2);
    const buf = this.buf;
    let o = this.size;
    buf[o++] = QUOTE;
    for (let i = start; i < end; i++) {
      const c = src[i]!;
      if (c >= 0x20 && c !== QUOTE) {
        buf[o++] = c;
        continue;
      }
      buf[o++] = BACKSLASH;
      if (c === QUOTE) buf[o++] = QUOTE;
      else if (c === 0x08) buf[o++] = 0x62; // \b
      else if (c === 0x09) buf[o++] = 0x74; // \t
      else if (c === 0x0a) buf[o++] = 0x6e; // \n
      else if (c === 0x0c) buf[o++] = 0x66; // \f
      else if (c === 0x0d) buf[o++] = 0x72; // \r
      else {
        buf[o++] = 0x75; // \u00XX
        buf[o++] = 0x30;
        buf[o++] = 0x30;
        buf[o++] = HEX.charCodeAt(c >> 4);
        buf[o++] = HEX.charCodeAt(c & 15);
      }
    }
    buf[o++] = QUOTE;
    this.size = o;
  }

  private ensure(n: number): void {
    if (this.size + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.size + n, 2 * this.buf.length));
    this.buf.copy(next, 0, 0, this.size);
    this.buf = next;
  }
}
