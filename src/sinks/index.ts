import type { SinkConfig } from '../config/schema.js';
import type { Sink } from './sink.js';
import { createStringSink } from './string-sink.js';
import { createHashSink } from './hash-sink.js';
import { createListSink } from './list-sink.js';
import { createSetSink } from './set-sink.js';
import { createZsetSink } from './zset-sink.js';
import { createStreamSink } from './stream-sink.js';
import { createPubsubSink } from './pubsub-sink.js';
import { createGeoSink } from './geo-sink.js';
import { createHyperLogLogSink } from './hyperloglog-sink.js';
import { createBitmapSink } from './bitmap-sink.js';
import { createAggregateSink } from './aggregate-sink.js';
import { SluiceError } from '../util/errors.js';

/** Builds the sink module for one configured sink. */
export function createSink(cfg: SinkConfig): Sink {
  const common = { name: cfg.name, expireMs: cfg.expire_ms, maxValueBytes: cfg.max_value_bytes };
  switch (cfg.type) {
    case 'string':
      return createStringSink({ ...common, key: cfg.key, value: cfg.value });
    case 'hash':
      return cfg.mode === 'row'
        ? createHashSink({ ...common, mode: 'row', key: cfg.key })
        : createHashSink({ ...common, mode: 'field', key: cfg.key, field: cfg.field, value: cfg.value });
    case 'list':
      return createListSink({ ...common, key: cfg.key, push: cfg.push, maxLength: cfg.max_length, value: cfg.value });
    case 'set':
      return createSetSink({ ...common, key: cfg.key, member: cfg.member });
    case 'zset':
      return createZsetSink({ ...common, key: cfg.key, member: cfg.member, score: cfg.score });
    case 'stream':
      return createStreamSink({ ...common, key: cfg.key, maxLength: cfg.max_length, maxAgeMs: cfg.max_age_ms });
    case 'pubsub':
      if (cfg.expire_ms !== undefined) {
        throw new SluiceError('sink_option_unsupported', `sink "${cfg.name}": expire_ms does not apply to pubsub sinks (Redis keeps nothing to expire); remove it`);
      }
      return createPubsubSink({ name: cfg.name, channel: cfg.channel, value: cfg.value, maxValueBytes: cfg.max_value_bytes });
    case 'geo':
      return createGeoSink({ ...common, key: cfg.key, member: cfg.member, longitude: cfg.longitude, latitude: cfg.latitude });
    case 'hyperloglog':
      return createHyperLogLogSink({ ...common, key: cfg.key, element: cfg.element });
    case 'bitmap':
      return createBitmapSink({ ...common, key: cfg.key, offset: cfg.offset });
    case 'aggregate':
      return createAggregateSink({ name: cfg.name, key: cfg.key, into: cfg.into, measures: cfg.measures, member: cfg.member, score: cfg.score });
  }
}

/** Something a sink's options do that its user should know (`sluice check` prints them as warnings). */
export interface SinkWarning {
  /** the option, under the sink's YAML path (`actions` → `sinks[2].actions`) */
  readonly option: string;
  readonly message: string;
}

export function sinkWarnings(cfg: SinkConfig): SinkWarning[] {
  const out: SinkWarning[] = [];
  if (cfg.type === 'hyperloglog' && cfg.actions.includes('delete')) {
    out.push({ option: 'actions', message: 'a HyperLogLog cannot forget an element: a delete changes nothing in Redis (PFADD only adds), and the count keeps the deleted rows; leave delete out of actions' });
  }
  if (cfg.type === 'aggregate' && !cfg.backfill) {
    out.push({ option: 'backfill', message: 'without the initial backfill an aggregate counts only the changes from its start: the rows that exist already are in no group (run sluice backfill to set every group from GROUP BY)' });
  }
  return out;
}
