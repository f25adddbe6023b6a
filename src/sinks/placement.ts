import type { Change, TableInfo } from '../core/change.js';
import { templateColumns, type TemplatePart } from '../core/template.js';
import type { Tuple } from '../core/tuple.js';
import { checkKey, type PlanExtras, type PlanOutput, type RedisCommand, type RouteOverride } from './sink.js';
import { indexDeleteCommand, indexWriteCommand, type RemoveCommand } from './reverse-index.js';

/** Where a row lives in a keyed sink: a key and, for set/zset/geo/hash field mode, a member or field (bitmap: the offset). */
export interface Place {
  readonly key: string;
  /** '' for hash row mode (the row is the whole key) */
  readonly member: string;
}

/** A template (TemplateCache), or anything else rendered from a row's columns (a bitmap's offset column). */
export interface RowRenderer {
  readonly parts: readonly TemplatePart[];
  render(table: TableInfo, row: Tuple): string;
}

export interface PlacementOptions {
  sinkName: string;
  key: RowRenderer;
  /** the member (set, zset, geo), field (hash field mode) or offset (bitmap); null for hash row mode */
  member: RowRenderer | null;
  /** what the member is called in messages and in RouteOverride */
  memberName: 'member' | 'field';
  remove: RemoveCommand;
  /**
   * Checks (and may normalize) a member, routed or rendered: throws MessageError when it cannot be
   * written (a bitmap offset out of range). An old place whose member fails it was never written.
   */
  checkMember?: (member: string) => string;
}

/**
 * Key and member of rows in the keyed sinks (hash, set, zset, geo, bitmap), and the removal of a row's old
 * place when an update moves it or a delete takes it away. The old place comes from the old row
 * Postgres sends (identity columns when they changed, the whole row with REPLICA IDENTITY FULL),
 * or, when the templates read other columns of a table without FULL, from the reverse index.
 */
export class Placement {
  private readonly indexed = new WeakMap<TableInfo, boolean>();

  constructor(private readonly opts: PlacementOptions) {}

  /**
   * True when the old place cannot be known from the WAL: a template reads a column outside the
   * replica identity and the table is not REPLICA IDENTITY FULL. (A table without any identity
   * cannot have its updates or deletes published, so it never needs one.)
   */
  usesIndex(table: TableInfo): boolean {
    let v = this.indexed.get(table);
    if (v === undefined) {
      v = false;
      if (table.replicaIdentity !== 'f' && table.keyIndexes.length > 0) {
        const identity = new Set(table.keyIndexes);
        const cols = templateColumns(this.opts.key.parts, table);
        if (this.opts.member) cols.push(...templateColumns(this.opts.member.parts, table));
        v = cols.some((c) => !identity.has(c));
      }
      this.indexed.set(table, v);
    }
    return v;
  }

  /** The place of `row`, with the route's key/member/field in place of the templates. */
  place(table: TableInfo, row: Tuple, route: RouteOverride | undefined): Place {
    const key = checkKey(route?.key ?? this.opts.key.render(table, row));
    if (!this.opts.member) return { key, member: '' };
    const member = this.routeMember(route) ?? this.opts.member.render(table, row);
    return { key, member: this.opts.checkMember ? this.opts.checkMember(member) : member };
  }

  /** The command that removes a place. */
  removeCommand(p: Place): RedisCommand {
    if (this.opts.remove === 'DEL') return ['DEL', p.key];
    if (this.opts.remove === 'SETBIT') return ['SETBIT', p.key, p.member, '0'];
    return [this.opts.remove, p.key, p.member];
  }

  /**
   * Before writing `place` for an insert/update/read: removes the row's old place when it
   * moved. With the reverse index that is the EVAL (which also records the new place);
   * otherwise the old place is rendered from the old row, if Postgres sent one.
   */
  beforeWrite(change: Change, place: Place, route: RouteOverride | undefined, out: PlanOutput): void {
    if (this.usesIndex(change.table)) {
      out.command(indexWriteCommand(this.opts.sinkName, change, this.opts.remove, place.key, place.member));
      return;
    }
    // a route decides the place from the new row alone: its old place is not known
    if (route?.key !== undefined || this.routeMember(route) !== undefined) return;
    const old = this.oldPlace(change);
    if (old !== null && (old.key !== place.key || old.member !== place.member)) out.command(this.removeCommand(old));
  }

  /**
   * A delete (or a change the route turned into one). With the reverse index, the place
   * recorded for the row is removed by the EVAL; the WAL's delete carries only the identity
   * columns, so the templates are rendered only when the route gives the place or the row is
   * complete (an update the route turned into a delete).
   */
  planDelete(change: Change, route: RouteOverride | undefined, out: PlanOutput): void {
    if (!this.usesIndex(change.table)) {
      const place = this.place(change.table, change.row, route);
      // an update the route turned into a delete may also have moved the row
      const old = route?.key === undefined && this.routeMember(route) === undefined ? this.oldPlace(change) : null;
      if (old !== null && (old.key !== place.key || old.member !== place.member)) out.command(this.removeCommand(old));
      out.command(this.removeCommand(place));
      return;
    }
    let place: Place | null = null;
    const routed = route?.key !== undefined && (this.opts.member === null || this.routeMember(route) !== undefined);
    if (routed || change.action !== 'delete') place = this.place(change.table, change.row, route);
    out.command(indexDeleteCommand(this.opts.sinkName, change, this.opts.remove));
    if (place !== null) out.command(this.removeCommand(place));
  }

  private routeMember(route: RouteOverride | undefined): string | undefined {
    return this.opts.memberName === 'field' ? route?.field : route?.member;
  }

  /** The place the row had before an update, from the old row Postgres sent; null if unknown. */
  private oldPlace(change: Change): Place | null {
    if (change.action !== 'update' || !change.oldRow) return null;
    try {
      // a key that fails the checks was never written: nothing to remove
      const key = checkKey(this.opts.key.render(change.table, change.oldRow));
      let member = this.opts.member ? this.opts.member.render(change.table, change.oldRow) : '';
      if (this.opts.checkMember) member = this.opts.checkMember(member);
      return { key, member };
    } catch {
      return null;
    }
  }
}

/**
 * Set, zset, geo and bitmap store no value besides the member (bitmap: the offset): a transform's
 * value is the member (unless the route names one), handled like a routed member.
 */
export function memberRoute(extras: PlanExtras | undefined): RouteOverride | undefined {
  const route = extras?.route;
  if (extras?.value === undefined || route?.member !== undefined) return route;
  return { ...route, member: extras.value };
}
