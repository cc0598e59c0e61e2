/**
 * Idempotent topic creation, for `provision`, `simulate` and `start` with
 * `create_topics: true`. An existing topic is left alone (Kafka cannot shrink
 * partitions, and growing them would move keys), with a warning when its
 * partition count differs from the plan. With creation off, a missing topic
 * is the user's mistake, said at once rather than retried as if Kafka were
 * still starting.
 */
import type { Admin } from "kafkajs";
import { createClient } from "./_client.ts";
import { UserError } from "../errors.ts";
import { log } from "../log.ts";

type TopicSpec = { readonly topic: string; readonly partitions: number };

export interface EnsureTopicsOptions {
  readonly brokers: readonly string[];
  readonly topics: readonly TopicSpec[];
  /** Client id in broker logs. Default "antenna-lambda-admin". */
  readonly clientId?: string;
  /**
   * Create the missing topics; false = a missing topic is a UserError (the
   * pipeline's `source.kafka.create_topics: false`). Default true.
   */
  readonly create?: boolean;
  /**
   * kafkajs' warnings about failed connections go to the debug log: for a
   * caller that retries through an outage and reports it itself. Default false.
   */
  readonly quietRetries?: boolean;
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
    quietRetries: opts.quietRetries,
  })
    .admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = opts.topics.filter((t) => !existing.has(t.topic));
    if (missing.length > 0 && opts.create === false) {
      const names = missing.map((t) => `"${t.topic}"`).join(", ");
      throw new UserError(
        `Kafka topic ${names} does not exist and topic creation is off (source.kafka.create_topics: false): create it first (deno task provision) or turn create_topics on`,
      );
    }
    if (missing.length > 0) await createMissing(admin, missing);
    const present = opts.topics.filter((t) => existing.has(t.topic));
    // Without creation the plan's partition count is not ours to compare.
    if (present.length > 0 && opts.create !== false) await warnOnPartitionCount(admin, present);
  } finally {
    await admin.disconnect();
  }
}

async function createMissing(admin: Admin, missing: readonly TopicSpec[]): Promise<void> {
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

async function warnOnPartitionCount(admin: Admin, present: readonly TopicSpec[]): Promise<void> {
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
