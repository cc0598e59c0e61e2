/**
 * Window semantics of the speed layer on real Kafka and PostgreSQL, with
 * hand-made events: lateness on both sides of the allowed lateness, the idle
 * timeout closing the last window, and dead-lettering of every bad kind.
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { DEAD_LETTER_REASONS } from "../../src/core/event.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { createKafkaDeadLetterSink, DLQ_HEADERS } from "../../src/kafka/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import { kafkaBrokers } from "../_support/services.ts";
import {
  produce,
  readBytes,
  readLake,
  referenceTotals,
  sorted,
  speedScene,
  startOnKafka,
  validEvents,
  waitCommitted,
  waitFor,
} from "../_support/speed_fixture.ts";

const ANT = "00000000-0000-0000-0001-000000000000";
const DEV = "00000000-0000-0000-0000-000000000001";

function event(tsSec: number, bytes: number) {
  return JSON.stringify({ bytes, timestamp: tsSec, app: "SKYPE", id: DEV, antenna_id: ANT });
}

async function setup(prefix: string, o: { windowMs: number; latenessMs: number; idleMs: number }) {
  const scene = await speedScene(prefix, 3, o);
  const db = await openDb({ url: scene.dbUrl });
  await migrate(db);
  return {
    topic: scene.topic,
    plan: scene.plan,
    db,
    async cleanup() {
      await db.close();
      await scene.drop();
    },
  };
}

Deno.test({
  name:
    "speed layer: late events within the lateness update the written window, later ones only reach the lake",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const s = await setup("speed-late", { windowMs: 10_000, latenessMs: 5_000, idleMs: 1_000 });
    try {
      const B = Math.floor(Date.now() / 3_600_000) * 3_600_000 / 1000 - 3_600; // an hour ago, s
      // Window W0 = [B, B+10). All on partition 0, in this offset order.
      const seq: [number, number][] = [
        [B + 1, 1], // W0 on time
        [B + 14, 1000], // W1 on time
        [B + 12, 2000], // W1 out of order, still on time
        [B + 16, 4000], // clock B+16 → watermark B+11 ≥ end of W0: W0 written
        [B + 5, 10], // W0 late but watermark < end + lateness (B+15): late_updated
        [B + 22, 8000], // clock B+22 → watermark B+17 ≥ B+15
        [B + 3, 100], // W0 too late: late_dropped (lake only)
      ];
      await produce(s.topic, seq.map(([t, b]) => ({ key: DEV, value: event(t, b), partition: 0 })));
      const registry = new Registry();
      const { layer, store } = await startOnKafka(s.plan, s.db, registry);
      await waitCommitted(layer, s.topic);
      const key = (w: number) => `antenna_bytes_total|${w * 1000}|${ANT}`;
      await waitFor("W2 closed by idleness", async () => (await readBytes(s.db)).has(key(B + 20)));
      const c = layer.status().counters;
      await layer.stop();

      const bytes = await readBytes(s.db);
      assert.equal(bytes.get(key(B)), 11, "W0 = 1 + the late-updated 10, not the dropped 100");
      assert.equal(bytes.get(key(B + 10)), 7000);
      assert.equal(bytes.get(key(B + 20)), 8000);
      assert.equal(c.lateUpdated, 1);
      assert.equal(c.lateDropped, 1);
      assert.equal(registry.counter("speed_late_dropped_total", "").get(), 1);
      const lake = await readLake(store);
      assert.deepEqual(
        lake.map((r) => [Number(r.offset), Number(r.bytes)]).sort((a, b) => a[0] - b[0]),
        seq.map(([, b], i) => [i, b]),
        "every event, the dropped one included, is in the lake once",
      );
    } finally {
      await s.cleanup();
    }
  },
});

Deno.test({
  name: "speed layer: the idle timeout makes the last window visible without further events",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const s = await setup("speed-idle", { windowMs: 60_000, latenessMs: 5_000, idleMs: 2_500 });
    try {
      const B = Math.floor(Date.now() / 60_000) * 60 - 600; // a window start 10 minutes ago
      await produce(s.topic, [
        { key: DEV, value: event(B + 1, 5), partition: 1 },
        { key: DEV, value: event(B + 30, 7), partition: 1 },
      ]);
      const { layer } = await startOnKafka(s.plan, s.db, new Registry());
      const t0 = Date.now();
      await waitCommitted(layer, s.topic);
      // Watermark = B+25 < window end B+60: not written yet.
      if (Date.now() - t0 < 2_000) assert.equal((await readBytes(s.db)).size, 0);
      await waitFor("row visible", async () => (await readBytes(s.db)).size > 0, 10_000);
      await layer.stop();
      assert.equal((await readBytes(s.db)).get(`antenna_bytes_total|${B * 1000}|${ANT}`), 12);
    } finally {
      await s.cleanup();
    }
  },
});

Deno.test({
  name:
    "speed layer: each bad kind goes to the DLQ topic and dead_letters, valid events stay exact",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const s = await setup("speed-dlq", { windowMs: 60_000, latenessMs: 5_000, idleMs: 1_000 });
    const dlqTopic = `${s.topic}.dlq`;
    const kafka = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: dlqTopic, numPartitions: 1 }] });
    await admin.disconnect();
    try {
      const startMs = Date.now() - 3_600_000;
      const gen = createGenerator({ seed: 3, startMs, rate: 5, malformedShare: 0.2, devices: 10 });
      const items = Array.from({ length: 400 }, () => gen.next());
      const bad = items.filter((i) => i.malformed);
      assert.ok(new Set(bad.map((i) => i.malformed)).size === DEAD_LETTER_REASONS.length);
      await produce(s.topic, items.map((i) => ({ key: i.key, value: i.value })));
      const dlq = await createKafkaDeadLetterSink({
        brokers: kafkaBrokers(),
        clientId: "speed-test-dlq",
        topic: dlqTopic,
        sourceTopic: s.topic,
      });
      const registry = new Registry();
      const { layer } = await startOnKafka(s.plan, s.db, registry, { dlq });
      const expected = referenceTotals(validEvents(items), 60_000);
      await waitCommitted(layer, s.topic);
      await waitFor("windows visible", async () => (await readBytes(s.db)).size >= expected.size);
      await layer.stop();
      await dlq.close();

      assert.deepEqual(sorted(await readBytes(s.db)), sorted(expected));
      const byReason = new Map<string, number>();
      for (const i of bad) byReason.set(i.malformed!, (byReason.get(i.malformed!) ?? 0) + 1);
      const rows = await s.db.query<{ reason: string; n: number }>(
        "SELECT reason, count(*)::int AS n FROM dead_letters GROUP BY reason",
      );
      assert.deepEqual(
        new Map(rows.map((r) => [r.reason, r.n])),
        byReason,
        "dead_letters rows by reason",
      );
      const counter = registry.counter("speed_dead_letters_total", "");
      for (const [reason, n] of byReason) assert.equal(counter.get({ reason }), n, reason);

      // The DLQ topic holds the original bytes with the reason in a header.
      const payloads = new Map(bad.map((i) => [new TextDecoder().decode(i.value), i.malformed]));
      const consumer = kafka.consumer({ groupId: `${dlqTopic}-reader` });
      await consumer.connect();
      await consumer.subscribe({ topic: dlqTopic, fromBeginning: true });
      const seen: [string, string][] = [];
      await consumer.run({
        eachMessage: ({ message }) => {
          seen.push([
            new TextDecoder().decode(message.value ?? new Uint8Array()),
            String(message.headers?.[DLQ_HEADERS.reason]),
          ]);
          return Promise.resolve();
        },
      });
      await waitFor("DLQ messages", () => seen.length >= bad.length, 20_000);
      await consumer.disconnect();
      assert.equal(seen.length, bad.length);
      for (const [value, reason] of seen) assert.equal(reason, payloads.get(value));
    } finally {
      await s.cleanup();
    }
  },
});
