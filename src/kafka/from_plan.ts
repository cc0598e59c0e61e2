/**
 * The Kafka side of a plan, opened the same way wherever the speed layer runs
 * (`start`, the standalone child of the kill tests): topics created when
 * the plan says so, the consumer-group source, and the dead-letter sink.
 */
import type { KafkaSourcePlan } from "../config/plan.ts";
import { createKafkaDeadLetterSink } from "./dead_letter_sink.ts";
import { createKafkaSource } from "./kafka_source.ts";
import { ensureTopics } from "./topics.ts";
import type { DeadLetterSink, EventSource } from "../speed/mod.ts";

export async function openKafkaFromPlan(
  k: KafkaSourcePlan,
): Promise<{ source: EventSource; deadLetters: DeadLetterSink }> {
  if (k.createTopics) {
    await ensureTopics({
      brokers: k.brokers,
      clientId: k.clientId,
      topics: [
        { topic: k.topic, partitions: k.partitions },
        { topic: k.deadLetterTopic, partitions: 1 },
      ],
    });
  }
  const deadLetters = await createKafkaDeadLetterSink({
    brokers: k.brokers,
    clientId: k.clientId,
    topic: k.deadLetterTopic,
    sourceTopic: k.topic,
  });
  const source = createKafkaSource({
    brokers: k.brokers,
    clientId: k.clientId,
    topic: k.topic,
    group: k.group,
    fromBeginning: k.fromBeginning,
    sessionTimeoutMs: k.sessionTimeoutMs,
  });
  return { source, deadLetters };
}
