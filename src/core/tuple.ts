/**
 * One column value of a TupleData:
 * - string: the value in Postgres's text output format
 * - null: SQL NULL
 * - undefined: an unchanged TOASTed value ('u'): Postgres did not send it, and it must never
 *   be written anywhere as if it were the value.
 */
export type TupleValue = string | null | undefined;
export type Tuple = TupleValue[];

/** 'd' default (primary key), 'n' nothing, 'f' full, 'i' index */
export type ReplicaIdentity = 'd' | 'n' | 'f' | 'i';
