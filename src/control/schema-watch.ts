import type { TableInfo } from '../core/change.js';
import type { SluiceConfig } from '../config/schema.js';
import { columnsSignature, schemaDiff, sinkDependsOn, type SchemaDiff } from '../plan/schema-change.js';
import { TableMatcher } from '../plan/table-match.js';
import type { StateStore } from '../state/state-store.js';
import type { BackfillManager } from '../backfill/backfill-manager.js';
import type { Metrics } from '../metrics.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';

/**
 * Schema changes reach Redis. The stream describes each table (a Relation message) before its
 * first change on every connection and after every change of its columns. The shape last seen
 * is kept in the state store, so a change made while Sluice was stopped is noticed too. When a
 * table's shape differs from the one last seen, every sink whose output depends on the changed
 * columns (and whose `on_schema_change` is `backfill`) backfills that table again, through the
 * watermarks, while the stream goes on.
 */
export class SchemaWatch {
  private backfills: BackfillManager | null = null;

  private constructor(
    private readonly known: Map<string, string>,
    private readonly config: SluiceConfig,
    private readonly state: StateStore,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  static async load(config: SluiceConfig, state: StateStore, metrics: Metrics, log: Logger): Promise<SchemaWatch> {
    return new SchemaWatch(await state.tableSchemas(), config, state, metrics, log);
  }

  /** Backfills can only start once the pipeline runs: changes seen before are started then. */
  attach(backfills: BackfillManager): void {
    this.backfills = backfills;
    for (const [table, diff] of this.early.splice(0)) this.react(table, diff);
  }

  private readonly early: [TableInfo, SchemaDiff][] = [];

  onRelation(table: TableInfo): void {
    const name = table.qualifiedName;
    const now = columnsSignature(table);
    const before = this.known.get(name);
    if (before === now) return;
    this.known.set(name, now);
    this.state.saveTableSchema(name, now).catch((err: unknown) => this.log.warn({ table: name, err: errorMessage(err) }, 'could not record the table\'s shape in the state store'));
    if (before === undefined) return; // first seen: what Redis holds was written with this shape
    const diff = schemaDiff(before, now);
    this.log.info({ table: name, added: diff.added, dropped: diff.dropped, retyped: diff.retyped }, 'the table\'s columns changed');
    this.metrics.schemaChanges.inc({ table: name });
    if (this.backfills) this.react(table, diff);
    else this.early.push([table, diff]);
  }

  private react(table: TableInfo, diff: SchemaDiff): void {
    for (const sink of this.config.sinks) {
      if (!new TableMatcher(sink.tables).matches(table)) continue;
      const options = sink as unknown as Record<string, unknown>;
      if (sink.on_schema_change === 'ignore') {
        this.log.info({ sink: sink.name, table: table.qualifiedName }, 'schema change ignored (on_schema_change: ignore): rows in Redis keep their old shape until they change');
        continue;
      }
      if (!sinkDependsOn({ type: sink.type, options, hasTransform: sink.transform !== undefined }, diff)) continue;
      this.log.warn({ sink: sink.name, table: table.qualifiedName }, 'schema change: backfilling the table again so the rows in Redis have the new shape');
      this.metrics.schemaBackfills.inc({ sink: sink.name });
      this.backfills?.start(sink.name, { table: table.qualifiedName, reason: 'schema change' }).catch((err: unknown) => {
        this.log.error({ sink: sink.name, table: table.qualifiedName, err: errorMessage(err) }, 'could not start the schema-change backfill');
      });
    }
  }
}
