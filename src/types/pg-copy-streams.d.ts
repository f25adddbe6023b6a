// @types/pg-copy-streams does not declare `both` (CopyBoth, used for START_REPLICATION).
import 'pg-copy-streams';
import type { Duplex, DuplexOptions } from 'node:stream';

declare module 'pg-copy-streams' {
  export function both(txt: string, options?: DuplexOptions & { alignOnCopyDataFrame?: boolean }): Duplex;
}
