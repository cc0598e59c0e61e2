/**
 * The Kafka output: each alert as JSON on the alert topic, keyed by email
 * (a user's alerts stay in order on one partition), with its delivery id in
 * the `delivery-id` header. The producer is idempotent, so its own retries
 * never duplicate; an attempt whose outcome was never recorded (the process
 * died between the broker's ack and the outbox update, or the send timed
 * out) is looked up on the topic before it is sent again, so the topic holds
 * each alert once.
 */
import type { AlertKafkaPlan } from "../config/plan.ts";
import { createProducer, ensureTopics, type Producer, readHeadersSince } from "../kafka/mod.ts";
import type { Logger } from "../log.ts";
import { type AlertOutput, type Attempt, errorText } from "./output.ts";
import type { Claimed } from "./store.ts";
import { alertJson, deliveryId } from "./types.ts";

/** The header carrying the delivery id. */
export const DELIVERY_HEADER = "delivery-id";

/** Broker and client clocks may differ a little: look back this much further. */
const LOOKBACK_SLACK_MS = 60_000;

export interface KafkaOutputOptions {
  readonly plan: AlertKafkaPlan;
  readonly log: Logger;
  /** Create the topic when missing (as `source.kafka.create_topics`). Default true. */
  readonly createTopic?: boolean;
  readonly partitions?: number;
}

export async function createKafkaOutput(o: KafkaOutputOptions): Promise<AlertOutput> {
  const { plan } = o;
  if (o.createTopic ?? true) {
    await ensureTopics({
      brokers: plan.brokers,
      clientId: plan.clientId,
      topics: [{ topic: plan.topic, partitions: o.partitions ?? 3 }],
    });
  }
  let producer: Producer | undefined;
  const connect = async () => (producer ??= await createProducer(plan));
  return {
    name: "kafka",
    retry: plan.retry,
    batchSize: 500,
    leaseMs: 60_000,
    failureInDoubt: true,
    async deliver(batch: readonly Claimed[]): Promise<Attempt[]> {
      try {
        const doubtful = batch.filter((c) => c.inDoubt);
        let present = new Set<string>();
        if (doubtful.length > 0) {
          const since = Math.min(...doubtful.map((c) => c.previousClaimMs ?? c.alert.detectedAt));
          present = await readHeadersSince({
            brokers: plan.brokers,
            clientId: plan.clientId,
            topic: plan.topic,
            sinceMs: since - LOOKBACK_SLACK_MS,
            header: DELIVERY_HEADER,
          });
          const already = doubtful.filter((c) => present.has(deliveryId(c.alert.id, "kafka")));
          if (already.length > 0) {
            o.log.info(
              "quota alerts already on the topic from an earlier attempt: not sent again",
              {
                topic: plan.topic,
                alerts: already.map((c) => c.alert.id),
              },
            );
          }
        }
        const send = batch.filter((c) => !present.has(deliveryId(c.alert.id, "kafka")));
        if (send.length > 0) {
          const p = await connect();
          await p.send(
            plan.topic,
            send.map((c) => {
              const id = deliveryId(c.alert.id, "kafka");
              return {
                key: c.alert.email,
                value: JSON.stringify({ ...alertJson(c.alert), delivery_id: id }),
                headers: { [DELIVERY_HEADER]: id },
              };
            }),
          );
        }
        return batch.map(() => ({ ok: true }));
      } catch (e) {
        // A producer that failed may be stuck (kafkajs): start a fresh one next time.
        const p = producer;
        producer = undefined;
        await p?.close().catch(() => {});
        const error = errorText(e);
        return batch.map(() => ({ ok: false, error }));
      }
    },
    async close() {
      await producer?.close();
    },
  };
}
