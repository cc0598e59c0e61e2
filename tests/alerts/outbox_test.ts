/**
 * The quota alert outbox on its own (real Kafka and PostgreSQL): deliveries
 * a dead process had claimed are taken over at once; an attempt left in
 * doubt that reached the topic is found there and not sent again, one that
 * did not is sent once; Kafka failures are retried with backoff and then
 * recorded as failed.
 */
import assert from "node:assert/strict";
import { migrate, openDb } from "../../src/db/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createProducer } from "../../src/kafka/mod.ts";
import { startDispatcher } from "../../src/alerts/dispatcher.ts";
import { createKafkaOutput } from "../../src/alerts/kafka_output.ts";
import { alertTelemetry } from "../../src/alerts/mod.ts";
import { freshDatabase, freshTopic, kafkaBrokers } from "../_support/services.ts";
import { waitFor } from "../_support/speed_fixture.ts";
import { quiet, readDeliveries, readTopic } from "../_support/alerts_fixture.ts";

const RETRY = { maxAttempts: 3, backoffMs: 100, maxBackoffMs: 200 };
const HOLDER = { id: "this-host:1", gone: (h: string) => h === "this-host:4242" };

/** Alerts 1..n of one hour with a pending kafka delivery each. */
async function seedAlerts(db: Awaited<ReturnType<typeof openDb>>, n: number) {
  await db.query(
    `INSERT INTO quota_alerts (id, hour, email, threshold, quota, usage, crossed_at, source)
     SELECT g, TIMESTAMP '2026-11-28 10:00', 'u' || g || '@example.com', 1, 1000, 1000,
       TIMESTAMP '2026-11-28 10:30', 'speed'
     FROM generate_series(1, $1::int) g`,
    [n],
  );
  await db.query(
    `INSERT INTO quota_alert_deliveries (alert_id, output) SELECT g, 'kafka'
     FROM generate_series(1, $1::int) g`,
    [n],
  );
}

Deno.test({
  name: "quota alert outbox: a dead process's claims are taken over; an attempt in doubt is " +
    "looked up on the topic and sent only if it is not there",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fdb = await freshDatabase("qa_outbox");
    const db = await openDb({ url: fdb.url, maxConnections: 4 });
    const topic = await freshTopic("qa-outbox", 3);
    try {
      await migrate(db);
      await seedAlerts(db, 3);
      // 1 and 2 were claimed by a process that died mid-delivery (lease far ahead);
      // 1 had reached the topic before the crash, 2 had not; 3 was never tried.
      await db.query(
        `UPDATE quota_alert_deliveries SET attempts = 1, in_doubt = true,
           claimed_at = now() - interval '5 seconds', claimed_by = 'this-host:4242',
           next_attempt_at = now() + interval '1 hour'
         WHERE alert_id IN (1, 2)`,
      );
      const p = await createProducer({ brokers: kafkaBrokers(), clientId: "qa-outbox-test" });
      await p.send(topic, [{
        key: "u1@example.com",
        value: '{"id":1,"delivery_id":"quota-alert-1-kafka"}',
        headers: { "delivery-id": "quota-alert-1-kafka" },
      }]);
      await p.close();

      const output = await createKafkaOutput({
        plan: { brokers: kafkaBrokers(), topic, clientId: "qa-outbox", retry: RETRY },
        log: quiet,
        createTopic: false,
      });
      const registry = new Registry();
      const dispatcher = startDispatcher({
        db,
        outputs: [output],
        log: quiet,
        telemetry: alertTelemetry(registry),
        pollMs: 100,
        holder: HOLDER,
      });
      try {
        await waitFor(
          "all delivered",
          async () => (await readDeliveries(db, "kafka")).every((d) => d.state === "delivered"),
          60_000,
        );
      } finally {
        await dispatcher.stop();
      }
      const msgs = await readTopic(topic, 3);
      assert.deepEqual(
        msgs.map((m) => m.deliveryId).sort(),
        ["quota-alert-1-kafka", "quota-alert-2-kafka", "quota-alert-3-kafka"],
        "each alert once on the topic",
      );
      const d = await readDeliveries(db, "kafka");
      assert.deepEqual(d.map((x) => x.attempts), [2, 2, 1]);
    } finally {
      await db.close();
      await fdb.drop();
    }
  },
});

Deno.test({
  name: "quota alert outbox: Kafka failures are retried with backoff, then recorded as failed",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fdb = await freshDatabase("qa_outbox_down");
    const db = await openDb({ url: fdb.url, maxConnections: 4 });
    try {
      await migrate(db);
      await seedAlerts(db, 2);
      // No broker listens there: every attempt fails fast.
      const output = await createKafkaOutput({
        plan: { brokers: ["127.0.0.1:1"], topic: "nowhere", clientId: "qa-down", retry: RETRY },
        log: quiet,
        createTopic: false,
      });
      const registry = new Registry();
      const dispatcher = startDispatcher({
        db,
        outputs: [output],
        log: quiet,
        telemetry: alertTelemetry(registry),
        pollMs: 100,
        holder: HOLDER,
      });
      try {
        await waitFor(
          "both failed for good",
          async () => (await readDeliveries(db, "kafka")).every((d) => d.state === "failed"),
          90_000,
        );
      } finally {
        await dispatcher.stop();
      }
      const d = await readDeliveries(db, "kafka");
      assert.ok(d.every((x) => x.attempts === 3 && x.lastError), JSON.stringify(d));
      assert.match(registry.render(), /quota_alert_delivery_failures_total\{output="kafka"\} 2/);
    } finally {
      await db.close();
      await fdb.drop();
    }
  },
});
