import type { Lsn } from '../../core/lsn.js';
import type { ReplicaIdentity, Tuple, TupleValue } from '../../core/tuple.js';

export type { ReplicaIdentity, Tuple, TupleValue };
import type { LogicalMessage } from '../../core/change.js';

/**
 * Typed pgoutput messages (protocol versions 1 and 2, text tuple format).
 * https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
 */


export interface RelationColumn {
  /** part of the replica identity (the primary key by default) */
  readonly isKey: boolean;
  readonly name: string;
  readonly typeOid: number;
  readonly typeMod: number;
}


export interface BeginMessage {
  readonly tag: 'begin';
  /** LSN of the commit record (the transaction's final LSN) */
  readonly finalLsn: Lsn;
  /** microseconds since 2000-01-01T00:00:00Z */
  readonly commitTimeMicros: bigint;
  readonly xid: number;
}

export interface CommitMessage {
  readonly tag: 'commit';
  readonly flags: number;
  readonly commitLsn: Lsn;
  /** end of the commit record: the position to confirm once the transaction is applied */
  readonly endLsn: Lsn;
  readonly commitTimeMicros: bigint;
}

export interface OriginMessage {
  readonly tag: 'origin';
  readonly originLsn: Lsn;
  readonly name: string;
}

export interface RelationMessage {
  readonly tag: 'relation';
  /** set inside a streamed transaction (protocol v2) */
  readonly xid?: number;
  readonly relationOid: number;
  readonly schema: string;
  readonly name: string;
  readonly replicaIdentity: ReplicaIdentity;
  readonly columns: readonly RelationColumn[];
}

export interface TypeMessage {
  readonly tag: 'type';
  readonly xid?: number;
  readonly typeOid: number;
  readonly schema: string;
  readonly name: string;
}

export interface InsertMessage {
  readonly tag: 'insert';
  readonly xid?: number;
  readonly relationOid: number;
  readonly newTuple: Tuple;
}

export interface UpdateMessage {
  readonly tag: 'update';
  readonly xid?: number;
  readonly relationOid: number;
  /** 'K': only the replica identity columns (others null); 'O': the whole old row (REPLICA IDENTITY FULL) */
  readonly oldKind: 'K' | 'O' | null;
  readonly oldTuple: Tuple | null;
  readonly newTuple: Tuple;
}

export interface DeleteMessage {
  readonly tag: 'delete';
  readonly xid?: number;
  readonly relationOid: number;
  readonly oldKind: 'K' | 'O';
  readonly oldTuple: Tuple;
}

export interface TruncateMessage {
  readonly tag: 'truncate';
  readonly xid?: number;
  readonly cascade: boolean;
  readonly restartIdentity: boolean;
  readonly relationOids: readonly number[];
}

export type { LogicalMessage };

/** protocol v2: a chunk of an in-progress transaction begins */
export interface StreamStartMessage {
  readonly tag: 'stream_start';
  readonly xid: number;
  readonly firstSegment: boolean;
}

export interface StreamStopMessage {
  readonly tag: 'stream_stop';
}

export interface StreamCommitMessage {
  readonly tag: 'stream_commit';
  readonly xid: number;
  readonly flags: number;
  readonly commitLsn: Lsn;
  readonly endLsn: Lsn;
  readonly commitTimeMicros: bigint;
}

export interface StreamAbortMessage {
  readonly tag: 'stream_abort';
  readonly xid: number;
  readonly subXid: number;
}

export type PgoutputMessage =
  | BeginMessage
  | CommitMessage
  | OriginMessage
  | RelationMessage
  | TypeMessage
  | InsertMessage
  | UpdateMessage
  | DeleteMessage
  | TruncateMessage
  | LogicalMessage
  | StreamStartMessage
  | StreamStopMessage
  | StreamCommitMessage
  | StreamAbortMessage;

/** Messages of the streaming replication protocol that carry pgoutput (inside CopyData). */
export interface XLogDataMessage {
  readonly tag: 'xlogdata';
  readonly walStart: Lsn;
  readonly walEnd: Lsn;
  readonly sendTimeMicros: bigint;
  /** one pgoutput message */
  readonly data: Buffer;
}

export interface PrimaryKeepaliveMessage {
  readonly tag: 'keepalive';
  readonly walEnd: Lsn;
  readonly sendTimeMicros: bigint;
  readonly replyRequested: boolean;
}

export type ReplicationMessage = XLogDataMessage | PrimaryKeepaliveMessage;
