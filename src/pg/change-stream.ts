import type { LogicalMessage, TableInfo, Transaction } from '../core/change.js';
import type { Lsn } from '../core/lsn.js';
import type { Logger } from '../util/log.js';
import { errorMessage } from '../util/errors.js';
import { PgoutputDecoder } from './pgoutput/decoder.js';
import { TransactionAssembler } from './assembler.js';
import { ReplicationSource, type SourceState } from './replication-source.js';
import type { ReplicationMessage } from './pgoutput/types.js';

export interface ChangeStreamOptions {
  url: string;
  slot: string;
  publication: string;
  log: Logger;
  /** a transaction with more changes is handed over in chunks of this size */
  maxTransactionRows: number;
  /** … or of this many bytes */
  maxTransactionBytes: number;
  /** whole transactions (or chunks), in commit order; `generation` counts connections */
  onTransaction(txn: Transaction, generation: number): void;
  /** a non-transactional logical message */
  onMessage(msg: LogicalMessage, generation: number): void;
  /** the server's position while nothing is being received */
  onKeepalive(walEnd: Lsn, generation: number): void;
  /** a Relation message: a table's shape as the stream describes it now (first use per connection, and after a change) */
  onRelation?(table: TableInfo): void;
  /** a new connection streams (Postgres resends from the confirmed position) */
  onConnected(generation: number): void;
  /**
   * The stream cannot go on: bytes that do not decode, or a handler that threw. Reconnecting
   * would only fail again at the same place, so the stream is paused and the error handed up.
   */
  onFatal(err: Error): void;
}

/** What the pipeline needs of a change stream (ChangeStream; an in-memory one in model tests). */
export interface ChangeSource {
  readonly state: SourceState;
  readonly lastError: string | null;
  readonly confirmedLsn: Lsn;
  readonly generation: number;
  readonly inTransaction: boolean;
  readonly openRows: number;
  readonly openBytes: number;
  start(from: Lsn): void;
  confirm(lsn: Lsn): void;
  pause(): void;
  resume(): void;
  /** closes the connection on purpose and streams again from the confirmed position; `reason` is logged */
  restart(reason?: string): void;
  stop(): Promise<void>;
}

/**
 * Postgres's side of the pipeline: the replication connection (with reconnects), the pgoutput
 * decoder and the transaction assembler. What leaves it are decoded transactions and messages;
 * the pipeline never sees bytes.
 */
export class ChangeStream implements ChangeSource {
  private readonly source: ReplicationSource;
  private decoder = new PgoutputDecoder();
  private readonly assembler: TransactionAssembler;
  private broken: Error | null = null;

  constructor(private readonly opts: ChangeStreamOptions) {
    this.assembler = new TransactionAssembler(
      {
        transaction: (txn) => opts.onTransaction(txn, this.source.generation),
        logicalMessage: (msg) => opts.onMessage(msg, this.source.generation),
        relation: (table) => opts.onRelation?.(table),
      },
      opts.maxTransactionRows,
      opts.maxTransactionBytes,
    );
    this.source = new ReplicationSource({
      url: opts.url,
      slot: opts.slot,
      publication: opts.publication,
      protoVersion: 1,
      log: opts.log,
      onMessage: (msg) => this.receive(msg),
      onConnected: () => {
        this.assembler.reset();
        this.decoder = new PgoutputDecoder();
        opts.onConnected(this.source.generation);
      },
    });
  }

  get state(): SourceState {
    return this.source.state;
  }

  get lastError(): string | null {
    return this.broken?.message ?? this.source.lastError;
  }

  get confirmedLsn(): Lsn {
    return this.source.confirmedLsn;
  }

  get generation(): number {
    return this.source.generation;
  }

  /** a transaction is being received (keepalives inside it say nothing about being idle) */
  get inTransaction(): boolean {
    return this.assembler.inTransaction;
  }

  /** rows and bytes of the transaction being received: they count toward the queue's bounds */
  get openRows(): number {
    return this.assembler.openRows;
  }

  get openBytes(): number {
    return this.assembler.openBytes;
  }

  start(from: Lsn): void {
    this.source.start(from);
  }

  confirm(lsn: Lsn): void {
    this.source.confirm(lsn);
  }

  pause(): void {
    this.source.pause();
  }

  resume(): void {
    if (this.broken === null) this.source.resume();
  }

  restart(reason?: string): void {
    this.source.restart(reason);
  }

  stop(): Promise<void> {
    return this.source.stop();
  }

  private receive(msg: ReplicationMessage): void {
    if (this.broken !== null) return;
    try {
      if (msg.tag === 'keepalive') this.opts.onKeepalive(msg.walEnd, this.source.generation);
      else this.assembler.push(this.decoder.decode(msg.data), msg.data.length);
    } catch (err) {
      this.broken = err instanceof Error ? err : new Error(errorMessage(err));
      this.source.pause();
      this.opts.onFatal(this.broken);
    }
  }
}
