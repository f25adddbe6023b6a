import type { SinkConfig } from '../config/schema.js';
import type { Sink } from './sink.js';
import { createStringSink } from './string-sink.js';
import { SluiceError } from '../util/errors.js';

/** Builds the sink module for one configured sink. */
export function createSink(cfg: SinkConfig): Sink {
  switch (cfg.type) {
    case 'string':
      return createStringSink({ name: cfg.name, key: cfg.key, value: cfg.value, expireMs: cfg.expire_ms, maxValueBytes: cfg.max_value_bytes });
    default:
      throw new SluiceError('sink_type_unsupported', `sink "${cfg.name}": type "${cfg.type}" is not available in this version yet`);
  }
}
