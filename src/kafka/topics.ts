/**
 * Idempotent topic creation, for `provision`, `simulate` and `start` with
 * `create_topics: true`. An existing topic is left alone (Kafka cannot shrink
 * partitions, and growing them would move keys), with a warning when its
 * partition count differs from the plan.
 */
import { createClient } from "./_client.ts";
import { log } from "../log.ts";

export interface EnsureTopicsOptions {
  readonly brokers: readonly string[];
  readonly topics: readonly { readonly topic: string; readonly partitions: number }[];
  /** Client id in broker logs. Default "antenna-lambda-admin". */
  readonly clientId?: string;
}

/**
 * Creates the topics that are missing; no error if they exist (even if another
 * process creates them at the same moment).
 *
 * @example await ensureTopics({ brokers, topics: [{ topic: "devices", partitions: 3 }] })
 */
export async function ensureTopics(opts: EnsureTopicsOptions): Promise<void> {
  const admin = createClient({
    brokers: opts.brokers,
    clientId: opts.clientId ?? "antenna-lambda-admin",
  })
    .admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = opts.topics.filter((t) => !existing.has(t.topic));
    if (missing.length > 0) {
      try {
        await admin.createTopics({
          topics: missing.map((t) => ({ topic: t.topic, numPartitions: t.partitions })),
          waitForLeaders: true,
        });
        log.info("created Kafka topics", { topics: missing.map((t) => t.topic) });
      } catch (e) {
        // Lost a race with another creator: fine, the topic exists.
        const errors = (e as { errors?: { type?: string }[] }).errors ?? [e as { type?: string }];
        if (!errors.every((x) => x.type === "TOPIC_ALREADY_EXISTS")) throw e;
      }
    }
    const present = opts.topics.filter((t) => existing.has(t.topic));
    if (present.length > 0) {
      const meta = await admin.fetchTopicMetadata({ topics: present.map((t) => t.topic) });
      for (const t of present) {
        const found = meta.topics.find((m) => m.name === t.topic)?.partitions.length;
        if (found !== undefined && found !== t.partitions) {
          log.warn("Kafka topic exists with a different partition count; leaving it as is", {
            topic: t.topic,
            partitions: found,
            planned: t.partitions,
          });
        }
      }
    }
  } finally {
    await admin.disconnect();
  }
}
