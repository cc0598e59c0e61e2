/**
 * Quota alert detection in the speed layer, on real Kafka and PostgreSQL:
 * a user whose devices are keyed to different partitions crosses 80 % and
 * 100 % of their quota and gets exactly two alerts, each raised by the event
 * that crossed, with the usage computed here; late events within their hour
 * count and later ones do not; an event landing exactly on the quota raises
 * the 100 % alert; devices without a user never alert; a quota lowered while
 * the hour runs applies from the next event; many users crossing on every
 * partition at once get one alert per threshold, each at the event where
 * the total over all partitions reached it.
 */
import assert from "node:assert/strict";
import { migrate, openDb } from "../../src/db/mod.ts";
import { HOUR_MS, hourStart } from "../../src/core/window.ts";
import { Registry } from "../../src/metrics.ts";
import { produce, type SpeedScene, speedScene, waitFor } from "../_support/speed_fixture.ts";
import {
  alertsYaml,
  devicesOn,
  event,
  insertUsers,
  readAlerts,
  readDeliveries,
  readTopic,
  startAlertLayer,
  waitSettled,
} from "../_support/alerts_fixture.ts";

const LATENESS_MS = 5_000;
const H = hourStart(Date.now()) - 3 * HOUR_MS;

async function scene(prefix: string, yaml = alertsYaml()): Promise<SpeedScene> {
  return await speedScene(prefix, 3, { latenessMs: LATENESS_MS, speedYaml: yaml, idleMs: 60_000 });
}

Deno.test({
  name: "quota alerts: devices on three partitions cross 80 % and 100 %: two alerts, each at " +
    "the crossing event, on the table and the topic",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const s = await scene("qa-cross");
    const db = await openDb({ url: s.dbUrl, maxConnections: 4 });
    let run: Awaited<ReturnType<typeof startAlertLayer>> | undefined;
    try {
      await migrate(db);
      const [d0] = devicesOn(0, 1), [d1] = devicesOn(1, 1), [d2] = devicesOn(2, 1);
      const quota = 1_000_000;
      await insertUsers(db, [d0, d1, d2].map((id) => ({ id, email: "ann@example.com", quota })));
      run = await startAlertLayer(s.plan, db, new Registry());
      const t = (min: number) => H + min * 60_000;

      // Each partition's events are made durable before the next partition's
      // are produced, so which event crosses is known in advance.
      await produce(s.topic, [1, 2, 3, 4, 5].map((i) => event(d0, 100_000, t(i)))); // 500,000
      await waitSettled(run.layer, s.topic, db);
      assert.equal((await readAlerts(db)).length, 0, "50 %: no alert");
      // 600,000 / 700,000 / 800,000 (reaches 80 %) / 900,000
      await produce(s.topic, [6, 7, 8, 9].map((i) => event(d1, 100_000, t(i))));
      await waitSettled(run.layer, s.topic, db);
      // 950,000 / 1,000,000 exactly (reaches 100 %) / 1,200,000
      await produce(s.topic, [
        event(d2, 50_000, t(10)),
        event(d2, 50_000, t(11)),
        event(d2, 200_000, t(12)),
      ]);
      await waitSettled(run.layer, s.topic, db);

      const alerts = await readAlerts(db);
      assert.deepEqual(
        alerts.map((a) => [a.email, a.hour, a.threshold, a.usage, a.quota, a.partition, a.offset]),
        [
          ["ann@example.com", H, 0.8, 800_000, quota, 1, 2],
          ["ann@example.com", H, 1, 1_000_000, quota, 2, 1],
        ],
      );
      assert.deepEqual(alerts.map((a) => a.crossedAt), [t(8), t(11)]);
      assert.ok(alerts.every((a) => a.source === "speed"));
      const usage = await db.query<{ usage: number }>(
        "SELECT usage FROM quota_usage WHERE email = 'ann@example.com'",
      );
      assert.equal(Number(usage[0].usage), 1_200_000, "the running usage sums every partition");

      // The Kafka output (the source is Kafka): each alert once, keyed by email.
      const topic = s.plan.speed.quotaAlerts.outputs.kafka!.topic;
      const msgs = await readTopic(topic, 2);
      assert.deepEqual(msgs.map((m) => m.key), ["ann@example.com", "ann@example.com"]);
      assert.deepEqual(
        msgs.map((m) => [m.value.threshold, m.value.usage, m.value.source]).sort(),
        [[0.8, 800_000, "speed"], [1, 1_000_000, "speed"]],
      );
      assert.deepEqual(
        msgs.map((m) => m.deliveryId).sort(),
        alerts.map((a) => `quota-alert-${a.id}-kafka`).sort(),
      );
      await waitFor(
        "kafka deliveries recorded",
        async () => (await readDeliveries(db, "kafka")).every((d) => d.state === "delivered"),
      );
    } finally {
      await run?.stop();
      await db.close();
      await s.drop();
    }
  },
});

Deno.test({
  name: "quota alerts: late events within their hour count, later ones do not; an event " +
    "exactly at the quota alerts; unknown devices never alert; a lowered quota applies from " +
    "the next event",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const s = await scene("qa-edges", alertsYaml({ refresh: "300ms", kafka: false }));
    const db = await openDb({ url: s.dbUrl, maxConnections: 4 });
    let run: Awaited<ReturnType<typeof startAlertLayer>> | undefined;
    try {
      await migrate(db);
      const [late, exact, clock, unknown] = devicesOn(0, 4);
      // On a partition of its own: partition 0's clock passes hour H below.
      const [lowered] = devicesOn(1, 1);
      await insertUsers(db, [
        { id: late, email: "late@example.com", quota: 1_000 },
        { id: exact, email: "exact@example.com", quota: 1_000 },
        { id: lowered, email: "lowered@example.com", quota: 10_000 },
        { id: clock, email: "clock@example.com", quota: 1_000_000_000 },
      ]);
      run = await startAlertLayer(s.plan, db, new Registry());
      const end = H + HOUR_MS; // end of hour H
      // One partition, in this order (the clock is the highest event time so far):
      await produce(s.topic, [
        event(exact, 799, H + 60_000), // 79.9 %
        event(exact, 1, H + 61_000), // exactly 80 %: the 80 % alert
        event(exact, 200, H + 62_000), // exactly 100 %: the 100 % alert
        event(lowered, 6_000, H + 63_000), // 60 % of 10,000: nothing
        event(unknown, 10_000_000_000, H + 64_000), // no user: nothing, ever
        event(clock, 1, end + 6_000), // clock at the hour's end + 6 s
        // 1,000 of hour H, 4 s before its end: within lateness (watermark end + 1 s).
        event(late, 1_000, end - 4_000),
        event(clock, 1, end + 2 * LATENESS_MS + 1_000), // clock past end + 2 x lateness
        // 1,000 more of hour H: now too late for the speed layer (left to the batch layer).
        event(late, 1_000, end - 3_000),
      ]);
      await waitSettled(run.layer, s.topic, db);
      let alerts = await readAlerts(db);
      assert.deepEqual(
        alerts.map((a) => [a.email, a.threshold, a.usage, a.crossedAt]),
        [
          ["exact@example.com", 0.8, 800, H + 61_000],
          ["exact@example.com", 1, 1_000, H + 62_000],
          ["late@example.com", 0.8, 1_000, end - 4_000],
          ["late@example.com", 1, 1_000, end - 4_000],
        ],
      );
      const usage = new Map(
        (await db.query<{ email: string; usage: number }>(
          "SELECT email, usage FROM quota_usage WHERE hour = $1",
          [new Date(H)],
        )).map((r) => [r.email, Number(r.usage)]),
      );
      assert.equal(usage.get("late@example.com"), 1_000, "the too-late event is not counted");
      assert.equal(usage.has("unknown"), false);

      // The quota drops to 5,000 while the hour runs: nothing happens until the next event
      // of the user, which raises both alerts against the new quota.
      await db.query("UPDATE user_metadata SET quota = 5000 WHERE id = $1", [lowered]);
      await new Promise((r) => setTimeout(r, 1_000)); // > refresh_interval
      assert.equal((await readAlerts(db)).length, 4, "a lowered quota alone raises nothing");
      await produce(s.topic, [event(lowered, 1, H + 65_000)]);
      await waitSettled(run.layer, s.topic, db);
      alerts = await readAlerts(db);
      assert.deepEqual(
        alerts.slice(4).map((a) => [a.email, a.threshold, a.usage, a.quota, a.crossedAt]),
        [
          ["lowered@example.com", 0.8, 6_001, 5_000, H + 65_000],
          ["lowered@example.com", 1, 6_001, 5_000, H + 65_000],
        ],
      );
      // No outputs configured (kafka off, no webhook): no outbox rows.
      assert.deepEqual(await readDeliveries(db, "kafka"), []);
    } finally {
      await run?.stop();
      await db.close();
      await s.drop();
    }
  },
});

Deno.test({
  name: "quota alerts: many users crossing on every partition at once get one alert per " +
    "threshold, raised at the event where the total over all partitions reached it",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const s = await scene("qa-many", alertsYaml({ kafka: false }));
    const db = await openDb({ url: s.dbUrl, maxConnections: 6 });
    let run: Awaited<ReturnType<typeof startAlertLayer>> | undefined;
    try {
      await migrate(db);
      const USERS = 60;
      const per = [0, 1, 2].map((p) => devicesOn(p, USERS));
      const users = Array.from({ length: USERS }, (_, u) => ({
        email: `u${u}@example.com`,
        quota: 200_000 + 10_000 * u,
        devices: per.map((list) => list[u]),
      }));
      await insertUsers(db, users.flatMap((u) => u.devices.map((id) => ({ id, ...u }))));
      // Produced in one order by one producer: the n-th event of a partition has offset n.
      const items: ReturnType<typeof event>[] = [];
      const byPartition: { device: string; bytes: number }[][] = [[], [], []];
      let k = 0;
      for (let round = 0; round < 40; round++) {
        for (const u of users) {
          u.devices.forEach((d, p) => {
            const bytes = 1_000 + ((k * 7919) % 9_000);
            items.push(event(d, bytes, H + 1_000 + k));
            byPartition[p].push({ device: d, bytes });
            k++;
          });
        }
      }
      run = await startAlertLayer(s.plan, db, new Registry());
      // Produced in slices while the layer consumes, so partitions interleave.
      for (let i = 0; i < items.length; i += 500) await produce(s.topic, items.slice(i, i + 500));
      await waitSettled(run.layer, s.topic, db);

      const alerts = await readAlerts(db);
      const keys = alerts.map((a) => `${a.email}|${a.threshold}`);
      assert.equal(new Set(keys).size, keys.length, "one alert per (email, hour, threshold)");
      const totals = new Map(
        (await db.query<{ email: string; usage: number }>("SELECT email, usage FROM quota_usage"))
          .map((r) => [r.email, Number(r.usage)]),
      );
      let alerted = 0;
      for (const u of users) {
        const total = byPartition.flat().filter((e) => u.devices.includes(e.device))
          .reduce((n, e) => n + e.bytes, 0);
        assert.equal(totals.get(u.email), total, `${u.email}: usage over every partition`);
        for (const t of [0.8, 1]) {
          const a = alerts.find((x) => x.email === u.email && x.threshold === t);
          if (total < t * u.quota) {
            assert.equal(a, undefined, `${u.email} never reached ${t}`);
            continue;
          }
          assert.ok(a, `${u.email} reached ${t}: alerted`);
          alerted++;
          // Raised by the event that crossed: the usage with it reaches the
          // threshold, the usage before it does not.
          const crossing = byPartition[a.partition!][a.offset!];
          assert.equal(
            crossing.device,
            u.devices[a.partition!],
            "the crossing event is the user's",
          );
          assert.ok(a.usage >= t * u.quota, `${u.email} ${t}: ${a.usage} reaches it`);
          assert.ok(a.usage - crossing.bytes < t * u.quota, `${u.email} ${t}: it crossed`);
        }
      }
      assert.ok(alerted >= 60, `most users cross both thresholds (${alerted} alerts)`);
    } finally {
      await run?.stop();
      await db.close();
      await s.drop();
    }
  },
});
