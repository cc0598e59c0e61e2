import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { freshTopic, kafkaBrokers, uniqueName } from "../_support/services.ts";
import { createKafkaDeadLetterSink, DLQ_HEADERS } from "../../src/kafka/mod.ts";
import type { DeadLetter } from "../../src/speed/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const enc = new TextEncoder();

Deno.test(
  "createKafkaDeadLetterSink() republishes the original bytes with dlq.* headers",
  opts,
  async () => {
    const brokers = kafkaBrokers();
    const topic = await freshTopic("dlq", 1);
    const sink = await createKafkaDeadLetterSink({
      brokers,
      clientId: "dlq-test",
      topic,
      sourceTopic: "devices",
    });
    const letters: DeadLetter[] = [
      {
        partition: 2,
        offset: 9_007_199_254,
        key: enc.encode("00000000-0000-0000-0000-000000000001"),
        value: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
        reason: "not_json",
        detail: "payload is not UTF-8 JSON",
      },
      {
        partition: 0,
        offset: 0,
        key: null,
        value: enc.encode('{"bytes":-5}'),
        reason: "negative_bytes",
        detail: 'field "bytes" is -5, expected >= 0',
      },
    ];
    await sink.send(letters);
    await sink.send([]);
    await sink.close();

    const consumer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).consumer({
      groupId: uniqueName("g"),
      maxWaitTimeInMs: 100,
    });
    const got: {
      key: Uint8Array | null;
      value: Uint8Array | null;
      headers: Record<string, string>;
    }[] = [];
    const done = Promise.withResolvers<void>();
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({
        eachMessage: ({ message }) => {
          const headers: Record<string, string> = {};
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v);
          got.push({ key: message.key, value: message.value, headers });
          if (got.length === letters.length) done.resolve();
          return Promise.resolve();
        },
      });
      const t = setTimeout(() => done.reject(new Error("dead letters not received")), 20_000);
      await done.promise;
      clearTimeout(t);
    } finally {
      await consumer.disconnect();
    }

    got.forEach((m, i) => {
      const l = letters[i];
      assert.deepEqual(m.key === null ? null : new Uint8Array(m.key), l.key);
      assert.deepEqual(new Uint8Array(m.value!), l.value);
      assert.deepEqual(m.headers, {
        [DLQ_HEADERS.reason]: l.reason,
        [DLQ_HEADERS.detail]: l.detail,
        [DLQ_HEADERS.sourceTopic]: "devices",
        [DLQ_HEADERS.sourcePartition]: String(l.partition),
        [DLQ_HEADERS.sourceOffset]: String(l.offset),
      });
    });
  },
);

Deno.test("ensureTopics() creates missing topics and accepts existing ones", opts, async () => {
  const { ensureTopics } = await import("../../src/kafka/mod.ts");
  const brokers = kafkaBrokers();
  const existing = await freshTopic("ensure", 2);
  const created = uniqueName("ensure_new").replaceAll("_", "-");
  const topics = [{ topic: existing, partitions: 2 }, { topic: created, partitions: 4 }];
  await ensureTopics({ brokers, topics });
  await ensureTopics({ brokers, topics }); // idempotent
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const meta = await admin.fetchTopicMetadata({ topics: [existing, created] });
    const parts = Object.fromEntries(meta.topics.map((t) => [t.name, t.partitions.length]));
    assert.deepEqual(parts, { [existing]: 2, [created]: 4 });
  } finally {
    await admin.disconnect();
  }
});
