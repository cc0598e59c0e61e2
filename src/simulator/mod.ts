/**
 * The simulator's front door: the deterministic sequential generator (pure,
 * behind `simulate`, the Kafka producer loop), and the in-process EventSource
 * that replays like a topic: a recorded timeline per partition (timeline.ts,
 * kept by a TimelineStore) and messages derived from (seed, partition,
 * offset) (message_at.ts).
 */
export {
  createGenerator,
  type GeneratedItem,
  type Generator,
  type GeneratorOptions,
} from "./generator.ts";
export {
  createSimulatorSource,
  type SimulatorSource,
  type SimulatorSourceOptions,
} from "./simulator_source.ts";
export {
  createMemoryTimelineStore,
  type PartitionTimeline,
  type TimelineStore,
} from "./timeline_store.ts";
export { createDbTimelineStore } from "./db_timeline_store.ts";
export {
  endOffsetAt,
  issueTimeMs,
  RATE_ZERO_NOMINAL,
  type Segment,
  startSegment,
} from "./timeline.ts";
export { createMessageAt, type IssuedMessage, type MessageParams } from "./message_at.ts";
export { simulate, type SimulateOptions, type SimulateSummary } from "./simulate.ts";
export { MALFORMED_KINDS } from "./malformed.ts";
export { keyPartition } from "./murmur2.ts";
export { antennaId, DEFAULT_APPS, deviceId } from "./ids.ts";
export { createRandom, type Random } from "./prng.ts";
export { HIGH_QUOTA, LOW_QUOTA, seedQuota, seedUsers } from "./users.ts";
