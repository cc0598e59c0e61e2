/**
 * The Kafka front door: the only module (with its siblings) that imports
 * kafkajs. The speed layer consumes through `createKafkaSource` (an
 * EventSource), rejects through `createKafkaDeadLetterSink`; the simulator
 * produces through `createProducer`; `ensureTopics` creates what is missing;
 * `openKafkaFromPlan` opens the topics, source and sink a plan names.
 *
 * Consumer tuning: 10 MiB per fetch, 2 MiB per partition, minBytes 64 KiB with
 * maxWait 100 ms, 3 partitions handled concurrently; autoCommit off (the speed
 * layer commits when its output is durable). Measured on the shared 2-core box
 * (500k messages of ~150 B, 3 partitions, consume-only): createKafkaSource
 * ~230k msg/s, bare kafkajs eachBatch with the same fetch sizes ~248k msg/s;
 * minBytes 1 and concurrency 1 changed it by under 10%. The producer reaches
 * ~20-25k msg/s (idempotent, acks all; kafkajs' encoding is the limit).
 */
export { createKafkaSource, type KafkaSourceOptions } from "./kafka_source.ts";
export {
  createProducer,
  type OutgoingMessage,
  type Producer,
  type ProducerOptions,
} from "./producer.ts";
export { ensureTopics, type EnsureTopicsOptions } from "./topics.ts";
export { openKafkaFromPlan } from "./from_plan.ts";
export {
  createKafkaDeadLetterSink,
  type DeadLetterSinkOptions,
  DLQ_HEADERS,
} from "./dead_letter_sink.ts";
export type {
  DeadLetter,
  DeadLetterSink,
  EventSource,
  SourceBatch,
  SourceHandlers,
  SourceMessage,
} from "./source.ts";
