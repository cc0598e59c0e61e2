/**
 * The simulator's front door: the deterministic generator (pure), the
 * in-process EventSource built on it, and the `simulate` producer loop.
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
export { simulate, type SimulateOptions, type SimulateSummary } from "./simulate.ts";
export { MALFORMED_KINDS } from "./malformed.ts";
export { keyPartition } from "./murmur2.ts";
export { antennaId, DEFAULT_APPS, deviceId } from "./ids.ts";
export { createRandom, type Random } from "./prng.ts";
