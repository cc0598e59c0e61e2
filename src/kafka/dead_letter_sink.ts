/**
 * The dead-letter topic writer. Each rejected message is republished as-is,
 * so it can be inspected or replayed with any Kafka tool:
 * - key and value: the original bytes, untouched (null stays null);
 * - headers (UTF-8 strings):
 *   `dlq.reason` (a DeadLetterReason, e.g. `negative_bytes`),
 *   `dlq.detail` (human text quoting the bad value),
 *   `dlq.source.topic`, `dlq.source.partition`, `dlq.source.offset`
 *   (where the message was read; topic only when `sourceTopic` is given).
 * Partitioning is by the original key, like the source topic.
 */
import type { DeadLetter, DeadLetterSink } from "../speed/mod.ts";
import { createProducer, type OutgoingMessage } from "./producer.ts";

export interface DeadLetterSinkOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** The dead-letter topic (e.g. `devices.dlq`). */
  readonly topic: string;
  /** The topic the letters were read from, written as `dlq.source.topic`. */
  readonly sourceTopic?: string;
}

/** Header names, for readers of the dead-letter topic. */
export const DLQ_HEADERS = {
  reason: "dlq.reason",
  detail: "dlq.detail",
  sourceTopic: "dlq.source.topic",
  sourcePartition: "dlq.source.partition",
  sourceOffset: "dlq.source.offset",
} as const;

/**
 * Connects a producer for the dead-letter topic.
 *
 * @example
 * const dlq = await createKafkaDeadLetterSink({ brokers, clientId: "speed", topic: "devices.dlq",
 *   sourceTopic: "devices" });
 * await dlq.send([{ partition: 0, offset: 42, key, value, reason: "not_json", detail: "…" }]);
 */
export async function createKafkaDeadLetterSink(
  opts: DeadLetterSinkOptions,
): Promise<DeadLetterSink> {
  const producer = await createProducer(opts);
  return {
    async send(letters: readonly DeadLetter[]): Promise<void> {
      if (letters.length === 0) return;
      const messages: OutgoingMessage[] = letters.map((l) => ({
        key: l.key,
        value: l.value,
        headers: {
          [DLQ_HEADERS.reason]: l.reason,
          [DLQ_HEADERS.detail]: l.detail,
          ...(opts.sourceTopic ? { [DLQ_HEADERS.sourceTopic]: opts.sourceTopic } : {}),
          [DLQ_HEADERS.sourcePartition]: String(l.partition),
          [DLQ_HEADERS.sourceOffset]: String(l.offset),
        },
      }));
      await producer.send(opts.topic, messages);
    },
    close: () => producer.close(),
  };
}
