// The RESP encoder is pure and lives in core/ (the planner encodes commands with it); the lanes
// import it from here.
export { RespWriter, encodeCommands, estimateSize } from '../core/resp-writer.js';
