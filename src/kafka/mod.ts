/**
 * The Kafka front door: the only module (with its siblings) that imports
 * kafkajs. The speed layer consumes through `createKafkaSource` (an
 * EventSource, the speed layer's port in src/speed/source.ts), rejects through `createKafkaDeadLetterSink`; the simulator
 * and the quota alert output produce through `createProducer` (the latter
 * reads back what an interrupted attempt published with `readHeadersSince`); `ensureTopics` creates what is missing;
 * `openKafkaFromPlan` opens the topics, source and sink a plan names.
 *
 * Consumer tuning: 10 MiB per fetch, 2 MiB per partition, minBytes 64 KiB with
 * maxWait 100 ms, 3 partitions handled concurrently; autoCommit off (the speed
 * layer commits when its output is durable). With these, createKafkaSource
 * consumes nearly as fast as bare kafkajs with the same fetch sizes, and
 * neither minBytes 1 nor concurrency 1 changed much; the producer (idempotent,
 * acks all) is bound by kafkajs' encoding. Figures: BENCHMARKS.md,
 * "Measurements behind the code".
 */
export { createKafkaSource, type KafkaSourceOptions } from "./kafka_source.ts";
export {
  createOutageRetry,
  createProducer,
  type OutageRetry,
  type OutgoingMessage,
  type Producer,
  type ProducerOptions,
} from "./producer.ts";
export { ensureTopics, type EnsureTopicsOptions } from "./topics.ts";
export { type ReadHeadersOptions, readHeadersSince } from "./read_headers.ts";
export { openKafkaFromPlan } from "./from_plan.ts";
export {
  createKafkaDeadLetterSink,
  type DeadLetterSinkOptions,
  DLQ_HEADERS,
} from "./dead_letter_sink.ts";
