/**
 * Quota alert deliveries to a webhook receiver served by the test: while the
 * receiver fails (5xx, no answer) consumption goes on and alerts are raised;
 * every delivery is retried with backoff and all arrive once it recovers,
 * signed and with a stable delivery id; a receiver down for good ends in
 * recorded failures that the API and /metrics show.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/api/mod.ts";
import { HOUR_MS, hourStart } from "../../src/core/window.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { produce, speedScene, waitFor } from "../_support/speed_fixture.ts";
import {
  alertsYaml,
  devicesOn,
  event,
  insertUsers,
  readAlerts,
  readDeliveries,
  startAlertLayer,
  waitSettled,
  webhookReceiver,
} from "../_support/alerts_fixture.ts";

const SECRET = "test-secret";
const H = hourStart(Date.now()) - 2 * HOUR_MS;

/** Ten users on three partitions, each crossing 80 % and 100 % of a 1,000-byte quota. */
async function crossings(db: Awaited<ReturnType<typeof openDb>>, round: number) {
  const devices = [0, 1, 2].flatMap((p) => devicesOn(p, 4)).slice(0, 10);
  await insertUsers(db, devices.map((id, i) => ({ id, email: `w${i}@example.com`, quota: 1_000 })));
  return devices.map((d, i) => event(d, 1_000, H + round * 60_000 + i * 1_000));
}

Deno.test({
  name: "quota alerts: a failing webhook (5xx, timeouts) never holds consumption; every " +
    "delivery is retried and arrives once, signed, when the receiver recovers",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    let healthy = false;
    // While unhealthy: two 503s, then a request left unanswered (the sender times out).
    const receiver = webhookReceiver(SECRET, (n) => (healthy ? 200 : n % 3 === 2 ? "hang" : 503));
    const s = await speedScene("qa-webhook", 3, {
      speedYaml: alertsYaml({
        kafka: false,
        webhook: { url: receiver.url, secret: SECRET, timeout: "500ms", backoff: "200ms" },
      }),
    });
    const db = await openDb({ url: s.dbUrl, maxConnections: 4 });
    const registry = new Registry();
    let run: Awaited<ReturnType<typeof startAlertLayer>> | undefined;
    try {
      await migrate(db);
      const events = await crossings(db, 0); // users first: the cache loads at start
      run = await startAlertLayer(s.plan, db, registry);
      await produce(s.topic, events);
      await waitSettled(run.layer, s.topic, db);
      await waitFor("20 alerts raised", async () => (await readAlerts(db)).length === 20);
      await waitFor("the receiver refused some", () => receiver.requests.length >= 6);
      assert.equal(receiver.accepted.size, 0, "nothing accepted yet");

      // The layer keeps consuming while every delivery fails.
      await produce(s.topic, [event(devicesOn(0, 1)[0], 1, H + 30 * 60_000)]);
      await waitSettled(run.layer, s.topic, db, 10_000);

      healthy = true;
      await waitFor("every delivery accepted", () => receiver.accepted.size === 20, 30_000);
      const alerts = await readAlerts(db);
      assert.deepEqual(
        [...receiver.accepted.keys()].sort(),
        alerts.map((a) => `quota-alert-${a.id}-webhook`).sort(),
      );
      assert.ok(receiver.requests.every((r) => r.signed), "every request signed with the secret");
      assert.ok(receiver.requests.some((r) => r.attempt > 1), "deliveries were retried");
      const first = [...receiver.accepted.values()].find((b) => b.threshold === 1)!;
      assert.equal(first.source, "speed");
      assert.equal(first.usage, 1_000);
      assert.equal(typeof first.crossed_at, "string");
      assert.match(String(first.delivery_id), /^quota-alert-\d+-webhook$/);
      await waitFor(
        "deliveries recorded",
        async () => (await readDeliveries(db, "webhook")).every((d) => d.state === "delivered"),
      );
      assert.ok(
        registry.render().includes('quota_alert_deliveries_total{output="webhook"} 20'),
        "delivered count in /metrics",
      );
    } finally {
      await run?.stop();
      await receiver.close();
      await db.close();
      await s.drop();
    }
  },
});

Deno.test({
  name: "quota alerts: a webhook down for good ends in recorded failures, shown by the API",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const receiver = webhookReceiver(SECRET, () => 503);
    const s = await speedScene("qa-webhook-down", 3, {
      speedYaml: alertsYaml({
        kafka: false,
        webhook: { url: receiver.url, secret: SECRET, attempts: 3, backoff: "100ms" },
      }),
    });
    const db = await openDb({ url: s.dbUrl, maxConnections: 4 });
    const registry = new Registry();
    let run: Awaited<ReturnType<typeof startAlertLayer>> | undefined;
    try {
      await migrate(db);
      const events = (await crossings(db, 0)).slice(0, 2);
      run = await startAlertLayer(s.plan, db, registry);
      await produce(s.topic, events);
      await waitSettled(run.layer, s.topic, db);
      await waitFor("every delivery failed for good", async () => {
        const d = await readDeliveries(db, "webhook");
        return d.length === 4 && d.every((x) => x.state === "failed");
      }, 30_000);
      const d = await readDeliveries(db, "webhook");
      assert.ok(d.every((x) => x.attempts === 3 && x.lastError === "HTTP 503 Service Unavailable"));
      assert.equal(receiver.requests.length, 12, "three attempts each, no more");

      const app = createApp({ plan: s.plan, db, registry, alerts: run.alerts.feed });
      const res = await app.request(
        `/api/v1/quota/alerts?from=${new Date(H).toISOString()}&delivery=failed`,
      );
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.alerts.length, 4);
      for (const a of body.alerts) {
        assert.equal(a.deliveries.webhook.state, "failed");
        assert.equal(a.deliveries.webhook.attempts, 3);
        assert.equal(a.deliveries.webhook.last_error, "HTTP 503 Service Unavailable");
      }
      const metrics = await (await app.request("/metrics")).text();
      assert.match(metrics, /quota_alert_delivery_failures_total\{output="webhook"\} 4/);
    } finally {
      await run?.stop();
      await receiver.close();
      await db.close();
      await s.drop();
    }
  },
});
