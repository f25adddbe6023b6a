import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { TableInfo, Transaction } from '../../src/core/change.js';
import { TransactionAssembler } from '../../src/pg/assembler.js';
import { PgoutputDecoder } from '../../src/pg/pgoutput/decoder.js';
import type { LogicalMessage } from '../../src/pg/pgoutput/types.js';
import { codecFor } from '../../src/core/values.js';
import * as F from './support/pgoutput-frames.js';
import { T } from './support/tables.js';

const PRODUCTS = 16_400;
const ORDERS = 16_401;
const T0 = 817_125_063_123_456n;

class Harness {
  readonly transactions: Transaction[] = [];
  readonly logical: LogicalMessage[] = [];
  readonly relations: TableInfo[] = [];
  /** everything the assembler handed over, in order */
  readonly events: string[] = [];
  readonly decoder = new PgoutputDecoder();
  readonly assembler: TransactionAssembler;

  constructor(maxRows?: number, maxBytes?: number) {
    this.assembler = new TransactionAssembler(
      {
        transaction: (txn) => {
          this.transactions.push(txn);
          this.events.push(`txn:${txn.changes.length}:${txn.complete}`);
        },
        logicalMessage: (msg) => {
          this.logical.push(msg);
          this.events.push(`message:${msg.prefix}`);
        },
        relation: (table) => {
          this.relations.push(table);
          this.events.push(`relation:${table.qualifiedName}`);
        },
      },
      maxRows,
      maxBytes,
    );
  }

  feed(...frames: Buffer[]): this {
    for (const f of frames) this.assembler.push(this.decoder.decode(f), f.length);
    return this;
  }
}

const productsRelation = F.relation({
  relationOid: PRODUCTS,
  schema: 'public',
  name: 'products',
  columns: [
    { name: 'id', typeOid: T.int8, isKey: true },
    { name: 'name', typeOid: T.text },
    { name: 'price', typeOid: T.numeric },
  ],
});
const productsWithSku = F.relation({
  relationOid: PRODUCTS,
  schema: 'public',
  name: 'products',
  columns: [
    { name: 'id', typeOid: T.int8, isKey: true },
    { name: 'name', typeOid: T.text },
    { name: 'price', typeOid: T.numeric },
    { name: 'sku', typeOid: T.varchar, typeMod: 36 },
  ],
});
const ordersRelation = F.relation({
  relationOid: ORDERS,
  schema: 'shop',
  name: 'order_items',
  replicaIdentity: 'f',
  columns: [
    { name: 'order_id', typeOid: T.int4, isKey: true },
    { name: 'qty', typeOid: T.int2 },
    { name: 'line', typeOid: T.int4, isKey: true },
    { name: 'at', typeOid: T.timestamptz },
  ],
});

const begin = (xid = 700, finalLsn = 0x16b3748n) => F.begin({ finalLsn, commitTimeMicros: T0, xid });
const commit = (commitLsn = 0x16b3748n, endLsn = 0x16b3778n) => F.commit({ commitLsn, endLsn, commitTimeMicros: T0 });
const ins = (id: number, name = 'p' + id) => F.insert({ relationOid: PRODUCTS, newTuple: [String(id), name, '9.50'] });

describe('TransactionAssembler', () => {
  test('a whole transaction: LSNs, changes in order with idx, table info, truncates', () => {
    const h = new Harness().feed(
      begin(700, 0x16b3748n),
      productsRelation,
      ordersRelation,
      F.insert({ relationOid: PRODUCTS, newTuple: ['1', 'Lamp', '9.50'] }),
      F.update({ relationOid: PRODUCTS, oldKind: 'K', oldTuple: ['1', null, null], newTuple: ['2', 'Lamp', '9.50'] }),
      F.update({ relationOid: ORDERS, oldKind: 'O', oldTuple: ['5', '1', '1', null], newTuple: ['5', '3', '1', undefined] }),
      F.update({ relationOid: PRODUCTS, newTuple: ['2', 'Desk Lamp', undefined] }),
      F.truncate({ relationOids: [PRODUCTS, ORDERS], cascade: true }),
      F.del({ relationOid: PRODUCTS, oldKind: 'K', oldTuple: ['2', null, null] }),
      F.message({ transactional: true, lsn: 0x16b3760n, prefix: 'sluice', content: 'watermark' }),
      commit(0x16b3748n, 0x16b3778n),
    );
    assert.equal(h.transactions.length, 1);
    const txn = h.transactions[0]!;
    assert.equal(txn.xid, 700);
    assert.equal(txn.commitLsn, 0x16b3748n);
    assert.equal(txn.endLsn, 0x16b3778n);
    assert.equal(txn.commitTimeMicros, T0);
    assert.equal(txn.complete, true);
    assert.deepEqual(txn.changes.map((c) => [c.idx, c.action, c.table.qualifiedName]), [
      [0, 'insert', 'public.products'],
      [1, 'update', 'public.products'],
      [2, 'update', 'shop.order_items'],
      [3, 'update', 'public.products'],
      [4, 'delete', 'public.products'],
    ]);
    const [insert, updK, updO, updNone, del] = txn.changes;
    assert.deepEqual([insert!.row, insert!.oldRow, insert!.oldKind], [['1', 'Lamp', '9.50'], null, null]);
    assert.deepEqual([updK!.row, updK!.oldRow, updK!.oldKind], [['2', 'Lamp', '9.50'], ['1', null, null], 'K']);
    assert.deepEqual([updO!.row, updO!.oldRow, updO!.oldKind], [['5', '3', '1', undefined], ['5', '1', '1', null], 'O']);
    assert.deepEqual([updNone!.row, updNone!.oldRow, updNone!.oldKind], [['2', 'Desk Lamp', undefined], null, null]);
    assert.deepEqual([del!.row, del!.oldRow, del!.oldKind], [['2', null, null], ['2', null, null], 'K']);

    // truncate: the tables, at the position of the next change
    assert.equal(txn.truncates.length, 1);
    assert.deepEqual(txn.truncates[0]!.tables.map((t) => t.qualifiedName), ['public.products', 'shop.order_items']);
    assert.equal(txn.truncates[0]!.idx, 4);

    assert.deepEqual(txn.messages.map((m) => [m.prefix, m.content.toString(), m.transactional]), [['sluice', 'watermark', true]]);
    assert.deepEqual(h.logical, []);
  });

  test('table info built from the Relation message', () => {
    const h = new Harness().feed(productsRelation, ordersRelation);
    assert.deepEqual(h.events, ['relation:public.products', 'relation:shop.order_items']);
    const products = h.assembler.table(PRODUCTS)!;
    assert.equal(products.relationOid, PRODUCTS);
    assert.equal(products.schema, 'public');
    assert.equal(products.name, 'products');
    assert.equal(products.qualifiedName, 'public.products');
    assert.equal(products.replicaIdentity, 'd');
    assert.deepEqual(products.keyIndexes, [0]);
    assert.deepEqual(products.columns.map((c) => [c.name, c.typeOid, c.isKey, c.jsonName]), [
      ['id', T.int8, true, '"id":'],
      ['name', T.text, false, '"name":'],
      ['price', T.numeric, false, '"price":'],
    ]);
    products.columns.forEach((c) => assert.equal(c.codec, codecFor(c.typeOid), `codec of ${c.name}`));

    const orders = h.assembler.table(ORDERS)!;
    assert.equal(orders.qualifiedName, 'shop.order_items');
    assert.equal(orders.replicaIdentity, 'f');
    assert.deepEqual(orders.keyIndexes, [0, 2]);
    assert.equal(orders.columns[3]!.codec.convert('2026-11-22 13:11:03.5+02'), '2026-11-22T11:11:03.5Z');
    assert.equal(h.assembler.table(1), undefined);
  });

  test('REPLICA IDENTITY FULL: Postgres flags every column as identity, and the table says so as sent', () => {
    // (pgoutput marks all columns; the pipeline re-keys such tables by their primary key)
    const h = new Harness().feed(ordersRelation, F.relation({
      relationOid: 16_402,
      schema: 'public',
      name: 'full',
      replicaIdentity: 'f',
      columns: [{ name: 'a', typeOid: T.int4, isKey: true }, { name: 'b', typeOid: T.text, isKey: true }],
    }));
    const t = h.assembler.table(16_402)!;
    assert.equal(t.replicaIdentity, 'f');
    assert.deepEqual(t.keyIndexes, [0, 1]);
  });

  test('a Relation re-sent mid-stream with an added column changes the table of later changes', () => {
    const h = new Harness().feed(
      productsRelation,
      begin(),
      ins(1),
      productsWithSku,
      F.insert({ relationOid: PRODUCTS, newTuple: ['2', 'Desk', '1.00', 'SKU-2'] }),
      commit(),
      begin(701, 0x2000000n),
      F.update({ relationOid: PRODUCTS, newTuple: ['2', 'Desk', '2.00', 'SKU-2'] }),
      commit(0x2000000n, 0x2000030n),
    );
    const [a, b] = h.transactions;
    const before = a!.changes[0]!.table;
    const after = a!.changes[1]!.table;
    assert.notEqual(before, after, 'a new TableInfo object for the new shape');
    assert.deepEqual(before.columns.map((c) => c.name), ['id', 'name', 'price']);
    assert.deepEqual(after.columns.map((c) => c.name), ['id', 'name', 'price', 'sku']);
    assert.equal(after.columns[3]!.codec, codecFor(T.varchar));
    assert.equal(b!.changes[0]!.table, after);
    assert.equal(h.assembler.table(PRODUCTS), after);
    assert.deepEqual(h.relations.length, 2);
  });

  test('custom types from Type messages: an array of an enum is an array', () => {
    const h = new Harness().feed(
      F.type({ typeOid: 90_001, schema: 'public', name: 'mood' }),
      F.type({ typeOid: 90_002, schema: 'public', name: '_mood' }),
      F.relation({
        relationOid: 16_500,
        schema: 'public',
        name: 'people',
        columns: [
          { name: 'id', typeOid: T.int4, isKey: true },
          { name: 'mood', typeOid: 90_001 },
          { name: 'moods', typeOid: 90_002 },
        ],
      }),
    );
    const t = h.assembler.table(16_500)!;
    assert.equal(t.columns[1]!.codec.stringy, true);
    assert.equal(t.columns[1]!.codec.convert('happy'), 'happy');
    assert.equal(t.columns[2]!.codec.convert('{happy,"so so"}'), '["happy","so so"]');
  });

  test(
    'a domain over numeric is a JSON number (§3), as the catalog (backfill) path makes it',
    // pgoutput describes a domain column by a Type message carrying the domain oid with the BASE
    // type's name (logicalrep_write_typ: namespace "" = pg_catalog, name "numeric")
    () => {
      const PRICE = 90_010; // CREATE DOMAIN price AS numeric(10,2)
      const h = new Harness().feed(
        F.type({ typeOid: PRICE, schema: '', name: 'numeric' }),
        F.relation({ relationOid: 16_510, schema: 'public', name: 'items', columns: [{ name: 'id', typeOid: T.int4, isKey: true }, { name: 'price', typeOid: PRICE }] }),
      );
      const codec = h.assembler.table(16_510)!.columns[1]!.codec;
      assert.equal(codec.stringy, false, 'numeric domain column should be a JSON number, not a string');
      assert.equal(codec.convert('9.50'), '9.50');
      // and the backfill path, which knows the base type, must agree with the stream
      assert.equal(codecFor(PRICE, { name: 'price', category: 'N', baseOid: T.numeric }).stringy, false);
    },
  );

  test('non-transactional logical messages are forwarded at once, transactional ones with the transaction', () => {
    const h = new Harness().feed(
      productsRelation,
      F.message({ transactional: false, lsn: 0x100n, prefix: 'low', content: '1' }),
      begin(),
      ins(1),
      F.message({ transactional: false, lsn: 0x110n, prefix: 'mid', content: Buffer.from([0, 1, 2]) }),
      F.message({ transactional: true, lsn: 0x120n, prefix: 'tx', content: '' }),
    );
    assert.deepEqual(h.events, ['relation:public.products', 'message:low', 'message:mid']);
    assert.deepEqual(h.logical.map((m) => [m.prefix, m.lsn, m.transactional]), [['low', 0x100n, false], ['mid', 0x110n, false]]);
    assert.deepEqual([...h.logical[1]!.content], [0, 1, 2]);
    h.feed(commit());
    assert.deepEqual(h.events.slice(3), ['txn:1:true']);
    assert.deepEqual(h.transactions[0]!.messages.map((m) => m.prefix), ['tx']);
  });

  test('a transactional message outside a transaction throws', () => {
    const h = new Harness();
    assert.throws(() => h.feed(F.message({ transactional: true, lsn: 1n, prefix: 'x', content: '' })), /outside a transaction/);
  });

  test('reset() drops the open transaction; the relation cache stays', () => {
    const h = new Harness().feed(productsRelation, begin(700), ins(1), ins(2));
    assert.equal(h.assembler.inTransaction, true);
    assert.equal(h.assembler.openRows, 2);
    assert.ok(h.assembler.openBytes > 0);
    h.assembler.reset();
    assert.equal(h.assembler.inTransaction, false);
    assert.equal(h.assembler.openRows, 0);
    assert.equal(h.assembler.openBytes, 0);
    assert.throws(() => h.feed(commit()), /commit outside a transaction/);
    // Postgres resends the transaction from its Begin (without the Relation: it was already sent)
    h.feed(begin(700), ins(1), commit());
    assert.equal(h.transactions.length, 1);
    assert.deepEqual(h.transactions[0]!.changes.map((c) => [c.idx, c.row[0]]), [[0, '1']]);
  });

  test('a Begin while a transaction is open starts over (after a reconnect)', () => {
    const h = new Harness().feed(productsRelation, begin(700), ins(1), begin(700), ins(1), ins(2), commit());
    assert.deepEqual(h.transactions.map((t) => t.changes.map((c) => c.idx)), [[0, 1]]);
  });

  test('a change before its Relation throws', () => {
    const h = new Harness().feed(begin());
    assert.throws(() => h.feed(ins(1)), /relation 16400 before its Relation message/);
    assert.throws(() => h.feed(F.del({ relationOid: ORDERS, oldKind: 'K', oldTuple: ['1', null, '1', null] })), /before its Relation/);
    assert.throws(() => h.feed(F.truncate({ relationOids: [ORDERS] })), /before its Relation/);
  });

  test('a change outside a transaction throws', () => {
    const h = new Harness().feed(productsRelation);
    assert.throws(() => h.feed(ins(1)), /insert outside a transaction/);
    assert.throws(() => h.feed(commit()), /commit outside a transaction/);
  });

  test('origin messages are ignored; streaming messages throw', () => {
    const h = new Harness().feed(productsRelation, begin(), F.origin({ originLsn: 5n, name: 'o' }), ins(1), commit());
    assert.equal(h.transactions[0]!.changes.length, 1);
    assert.throws(() => h.feed(F.streamStart({ xid: 1, firstSegment: true })), /streaming of in-progress transactions was not requested/);
  });

  test('an empty transaction is still handed over (its end LSN must be confirmed)', () => {
    const h = new Harness().feed(begin(9, 0x50n), commit(0x50n, 0x80n));
    assert.deepEqual(h.transactions.map((t) => [t.xid, t.changes.length, t.endLsn, t.complete]), [[9, 0, 0x80n, true]]);
  });

  test('transactions larger than maxRows arrive in chunks; idx keeps counting', () => {
    const h = new Harness(2).feed(productsRelation, begin(7, 0x900n), ins(1), ins(2), ins(3), F.truncate({ relationOids: [PRODUCTS] }), ins(4), ins(5), commit(0x900n, 0x930n));
    assert.deepEqual(
      h.transactions.map((t) => ({ idx: t.changes.map((c) => c.idx), complete: t.complete, commitLsn: t.commitLsn, endLsn: t.endLsn, truncates: t.truncates.map((x) => x.idx) })),
      [
        { idx: [0, 1], complete: false, commitLsn: 0x900n, endLsn: 0n, truncates: [] },
        { idx: [2, 3], complete: false, commitLsn: 0x900n, endLsn: 0n, truncates: [3] },
        { idx: [4], complete: true, commitLsn: 0x900n, endLsn: 0x930n, truncates: [] },
      ],
    );
  });

  test('chunks by bytes', () => {
    const frame = ins(1);
    const h = new Harness(Number.POSITIVE_INFINITY, frame.length * 2).feed(productsRelation, begin(), ins(1), ins(2), ins(3), commit());
    assert.deepEqual(h.transactions.map((t) => [t.changes.length, t.complete]), [[2, false], [1, true]]);
  });

  test('property: chunks concatenate to the whole transaction, in order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1, max: 10 }), (n, maxRows) => {
        const h = new Harness(maxRows).feed(productsRelation, begin());
        for (let i = 0; i < n; i++) h.feed(ins(i));
        h.feed(commit());
        const all = h.transactions.flatMap((t) => t.changes);
        assert.deepEqual(all.map((c) => c.idx), Array.from({ length: n }, (_, i) => i));
        assert.deepEqual(all.map((c) => c.row[0]), Array.from({ length: n }, (_, i) => String(i)));
        assert.ok(h.transactions.every((t) => t.changes.length <= maxRows));
        assert.deepEqual(h.transactions.map((t) => t.complete), h.transactions.map((_, i) => i === h.transactions.length - 1));
      }),
      { numRuns: 100 },
    );
  });
});
