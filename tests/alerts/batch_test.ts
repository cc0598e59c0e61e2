/**
 * The batch layer confirms or corrects an hour's quota alerts: a full hour
 * goes through the speed layer (alerts on) into the lake, then the batch
 * layer runs it with the confirmation riding along. Speed alerts the exact
 * usage reaches are confirmed (one exactly at the quota too, though
 * user_quota_limit, strictly greater, has no row for it); one whose quota was
 * raised since is unconfirmed; a breach made of events the speed layer
 * dropped as too late gets a late alert (source batch) through the same
 * outbox; the hour's agreement is in quota_alert_reconciliation and the API.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/api/mod.ts";
import { createBatchRunner } from "../../src/batch/mod.ts";
import { HOUR_MS, hourStart } from "../../src/core/window.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { produce, speedScene, waitCommitted, waitFor } from "../_support/speed_fixture.ts";
import {
  alertsYaml,
  devicesOn,
  event,
  insertUsers,
  quiet,
  readAlerts,
  startAlertLayer,
  waitFolded,
  webhookReceiver,
} from "../_support/alerts_fixture.ts";

const SECRET = "batch-secret";
const LATENESS_MS = 5_000;

Deno.test({
  name: "quota alerts: the batch layer confirms a full hour's speed alerts and raises a late " +
    "alert for a breach of events the speed layer dropped as late",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const receiver = webhookReceiver(SECRET);
    const s = await speedScene("qa-batch", 3, {
      latenessMs: LATENESS_MS,
      idleMs: 60_000,
      speedYaml: alertsYaml({ kafka: false, webhook: { url: receiver.url, secret: SECRET } }),
    });
    const db = await openDb({ url: s.dbUrl, maxConnections: 4 });
    const registry = new Registry();
    let run: Awaited<ReturnType<typeof startAlertLayer>> | undefined;
    try {
      await migrate(db);
      const H = hourStart(Date.now()) - 3 * HOUR_MS;
      const end = H + HOUR_MS;
      const [over, exact, raised, late] = devicesOn(0, 4);
      const [over2] = devicesOn(1, 1);
      await insertUsers(db, [
        { id: over, email: "over@example.com", quota: 1_000 },
        { id: over2, email: "over@example.com", quota: 1_000 },
        { id: exact, email: "exact@example.com", quota: 1_000 },
        { id: raised, email: "raised@example.com", quota: 1_000 },
        { id: late, email: "late@example.com", quota: 1_000 },
      ]);
      run = await startAlertLayer(s.plan, db, registry);
      await produce(s.topic, [
        event(over, 700, H + 60_000),
        event(over2, 700, H + 61_000), // over: 1,400 over two partitions
        event(exact, 1_000, H + 120_000), // exactly at the quota
        event(raised, 900, H + 180_000), // 90 %: the 80 % alert
        event(late, 300, H + 240_000), // 30 %
        event(over, 1, end + 20_000), // partition 0's clock: hour H closed for alerts
        event(late, 900, end - 60_000), // too late for the speed layer: 1,200 in the lake
      ]);
      await waitCommitted(run.layer, s.topic, 60_000);
      await waitFolded(db);
      const speedAlerts = await readAlerts(db);
      assert.deepEqual(
        speedAlerts.map((a) => `${a.email} ${a.threshold}`).sort(),
        [
          "exact@example.com 0.8",
          "exact@example.com 1",
          "over@example.com 0.8",
          "over@example.com 1",
          "raised@example.com 0.8",
        ],
      );
      // The quota of one user is raised before the hour is batched.
      await db.query("UPDATE user_metadata SET quota = 2000 WHERE id = $1", [raised]);
      await run.layer.stop(); // flushes the lake

      const batch = createBatchRunner({
        plan: s.plan,
        db,
        store: openStore(s.plan.lake),
        log: quiet,
        registry,
        participants: [run.alerts.confirmation],
      });
      const summary = await batch.runHour(H, "manual");
      assert.equal(summary.status, "succeeded", summary.error ?? "");

      const alerts = await readAlerts(db);
      assert.deepEqual(
        alerts.map((a) => `${a.email} ${a.threshold} ${a.source} ${a.batchStatus}`).sort(),
        [
          "exact@example.com 0.8 speed confirmed",
          "exact@example.com 1 speed confirmed",
          "late@example.com 0.8 batch late",
          "late@example.com 1 batch late",
          "over@example.com 0.8 speed confirmed",
          "over@example.com 1 speed confirmed",
          "raised@example.com 0.8 speed unconfirmed",
        ],
      );
      const lateAlert = alerts.find((a) => a.email === "late@example.com" && a.threshold === 1)!;
      assert.equal(lateAlert.usage, 1_200);
      assert.equal(lateAlert.crossedAt, null);
      const breaches = await db.query<{ email: string }>(
        "SELECT email FROM user_quota_limit WHERE timestamp = $1 ORDER BY email",
        [new Date(H)],
      );
      assert.deepEqual(
        breaches.map((b) => b.email),
        ["late@example.com", "over@example.com"],
        "exactly at the quota is no breach",
      );

      // The late alerts go through the same outbox.
      await waitFor(
        "late alerts delivered",
        () => [...receiver.accepted.values()].filter((b) => b.source === "batch").length === 2,
      );

      const app = createApp({ plan: s.plan, db, registry, alerts: run.alerts.feed });
      const res = await app.request(
        `/api/v1/quota/reconciliation?from=${new Date(H).toISOString()}&to=${
          new Date(end).toISOString()
        }`,
      );
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.deepEqual(
        body.hours.map((
          h: Record<string, unknown>,
        ) => [h.threshold, h.speed_alerts, h.confirmed, h.unconfirmed, h.late]),
        [[0.8, 3, 2, 1, 1], [1, 2, 2, 0, 1]],
      );

      // A re-run judges again and raises nothing twice.
      assert.equal((await batch.runHour(H, "manual")).status, "succeeded");
      assert.equal((await readAlerts(db)).length, 7);
    } finally {
      await run?.stop();
      await receiver.close();
      await db.close();
      await s.drop();
    }
  },
});
