// The slot tags are pure and live in core/ (aggregate sinks place their registries with them).
export { slotOf, slotTag } from '../core/slot-tags.js';
