/**
 * `sluice/client`: read-your-writes and cache-aside for applications that read what Sluice keeps
 * in Redis. Talks to Redis only. See docs/client.md.
 *
 *   import { SluiceClient } from 'sluice/client';
 */
export {
  SluiceClient,
  DEFAULT_WAIT_TIMEOUT_MS,
  DEFAULT_LOCK_MS,
  DEFAULT_LOCK_PREFIX,
  DEFAULT_DEFINITIONS_MAX_AGE_MS,
  type SluiceClientOptions,
  type WaitForOptions,
  type ReadOptions,
  type KeyForOptions,
} from './client.js';
export { SluiceClientError, type SluiceClientErrorCode } from './errors.js';
export type { LsnInput } from './fence.js';
export { renderFromDefinition as renderKey, type SinkDefinition, type RenderOptions, type RowValue, type TemplateName } from './keys.js';
export type { RedisInput } from './connection.js';
