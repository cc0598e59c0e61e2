/**
 * Live numbers from the first minute, on real Kafka and PostgreSQL with the
 * real speed layer: the open window is served as it fills (`final: false`)
 * with exactly what the test produced into it, late events within the
 * lateness included, turns `final: true` with the same total once every
 * partition's watermark passed its end plus the lateness (and stays so), and
 * nothing is counted twice; serving_5m_live says the same. The top and breach routes
 * answer hours not batched yet from the speed layer (a batch-only metric per
 * email through its per-device speed metric) and switch to the batch values
 * once the hour is batched. Expectations are the test's own sums.
 */
import assert from "node:assert/strict";
import { migrate, openDb } from "../../src/db/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createApp } from "../../src/api/mod.ts";
import { createBatchRunner } from "../../src/batch/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { produce, speedScene, startOnKafka, waitCommitted } from "../_support/speed_fixture.ts";
import {
  alertsYaml,
  event,
  insertUsers,
  quiet,
  startAlertLayer,
  waitSettled,
} from "../_support/alerts_fixture.ts";
import { LOOPBACK } from "../_support/api_env.ts";

const ANT = "00000000-0000-0000-0001-000000000000";
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
type Point = { timestamp: string; id: string; value: number; source: string; final: boolean };

async function getJson(app: ReturnType<typeof createApp>, path: string) {
  const res = await app.request(path, {}, LOOPBACK);
  const body = await res.json();
  assert.equal(res.status, 200, `${path}: ${body.error}`);
  return body;
}

/** One antenna event of `bytes` at `tMs` on `partition`. */
const on = (partition: number, bytes: number, tMs: number) => ({
  ...event(`00000000-0000-0000-0000-00000000000${partition}`, bytes, tMs),
  partition,
});

Deno.test({
  name: "series: the open window is served as it fills, then final with the same exact total",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // A long idle timeout: only the watermark closes windows here.
    const scene = await speedScene("live-open", 2, {
      windowMs: 60_000,
      latenessMs: 5_000,
      idleMs: 600_000,
    });
    const db = await openDb({ url: scene.dbUrl });
    await migrate(db);
    const registry = new Registry();
    const { layer } = await startOnKafka(scene.plan, db, registry);
    const app = createApp({ plan: scene.plan, db, registry, log: quiet });
    try {
      // Ten minutes into the last hour: both windows of the test in one hour.
      const H = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
      const W0 = H + 600_000;
      const W1 = W0 + 60_000;
      const windows = `/api/v1/metrics/antenna_bytes_total/series?id=${ANT}&granularity=5m` +
        `&from=${iso(W0)}&to=${iso(W0 + 600_000)}`;
      const live = async () =>
        (await db.query<{ timestamp: Date; value: number; final: boolean }>(
          `SELECT timestamp, value, final FROM serving_5m_live
           WHERE type = 'antenna_bytes_total' AND id = $1 ORDER BY timestamp`,
          [ANT],
        )).map((r) => ({
          timestamp: iso(r.timestamp.getTime()),
          value: Number(r.value),
          final: r.final,
        }));
      const closed = async () =>
        (await db.query<{ value: number }>(
          `SELECT value FROM bytes WHERE type = 'antenna_bytes_total' AND id = $1
             AND timestamp = $2::timestamp`,
          [ANT, new Date(W0)],
        )).map((r) => Number(r.value));

      // Nothing yet: a valid id without rows is an empty series.
      assert.deepEqual((await getJson(app, windows)).points, []);

      await produce(scene.topic, [
        on(0, 100, W0 + 1_000),
        on(0, 250, W0 + 20_000),
        on(1, 1_000, W0 + 5_000),
        on(1, 7, W0 + 40_000),
      ]);
      await waitCommitted(layer, scene.topic);
      const w0 = 100 + 250 + 1_000 + 7;
      const open = { timestamp: iso(W0), id: ANT, value: w0, source: "speed", final: false };
      assert.deepEqual((await getJson(app, windows)).points, [open]);
      assert.deepEqual(await closed(), [], "bytes still hides the open window");
      assert.deepEqual(await live(), [{ timestamp: iso(W0), value: w0, final: false }]);
      const hourly = `/api/v1/metrics/antenna_bytes_total/series?id=${ANT}` +
        `&from=${iso(H)}&to=${iso(H + HOUR)}`;
      assert.deepEqual((await getJson(app, hourly)).points, [
        { timestamp: iso(H), id: ANT, value: w0, source: "speed", final: false },
      ]);

      // Partition 0 passes W0's end but not by the lateness: a late event still
      // counts in W0, which keeps filling (partition 1 has not passed it at all).
      await produce(scene.topic, [on(0, 11, W1 + 7_000), on(0, 3, W0 + 50_000)]);
      await waitCommitted(layer, scene.topic);
      assert.deepEqual((await getJson(app, windows)).points, [
        { ...open, value: w0 + 3 },
        { timestamp: iso(W1), id: ANT, value: 11, source: "speed", final: false },
      ]);

      // Both partitions pass W0's end plus the lateness: W0 is final with the
      // same total, counted once.
      await produce(scene.topic, [on(0, 5, W1 + 12_000), on(1, 6, W1 + 12_000)]);
      await waitCommitted(layer, scene.topic);
      const points = (await getJson(app, windows)).points as Point[];
      assert.deepEqual(points, [
        { ...open, value: w0 + 3, final: true },
        { timestamp: iso(W1), id: ANT, value: 11 + 5 + 6, source: "speed", final: false },
      ]);
      // A late event past the lateness no longer changes the final window.
      await produce(scene.topic, [on(1, 1_000_000, W0 + 30_000)]);
      await waitCommitted(layer, scene.topic);
      assert.deepEqual((await getJson(app, windows)).points, points);
      assert.deepEqual(await closed(), [w0 + 3]);
      assert.deepEqual(
        await live(),
        points.map((p) => ({ timestamp: p.timestamp, value: p.value, final: p.final })),
      );
      assert.equal(points.reduce((n, p) => n + p.value, 0), w0 + 3 + 11 + 5 + 6);
      assert.deepEqual((await getJson(app, hourly)).points, [
        { timestamp: iso(H), id: ANT, value: w0 + 3 + 22, source: "speed", final: false },
      ]);
    } finally {
      await layer.stop();
      await db.close();
      await scene.drop();
    }
  },
});

Deno.test({
  name: "top and breaches: hours not batched come from the speed layer, then from the batch",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const scene = await speedScene("live-top", 2, {
      windowMs: 300_000,
      latenessMs: 5_000,
      idleMs: 600_000,
      speedYaml: alertsYaml({ kafka: false, thresholds: [1] }),
      extraYaml: `batch:
  unknown_device: { policy: unknown_id, id: unknown }
  metrics:
    - { name: email_bytes_total, group_by: email, reconcile_with: user_bytes_total }
`,
    });
    const db = await openDb({ url: scene.dbUrl });
    await migrate(db);
    const dev = (i: number) => `00000000-0000-0000-0000-0000000000${String(i).padStart(2, "0")}`;
    // Two devices per user; user0 has a small quota; device 9 has no user.
    const users = [0, 1, 2, 3, 4, 5].map((i) => ({
      id: dev(i),
      email: `user${i >> 1}@example.com`,
      quota: i >> 1 === 0 ? 1_000 : 1_000_000,
    }));
    await insertUsers(db, users);
    const registry = new Registry();
    const al = await startAlertLayer(scene.plan, db, registry);
    const app = createApp({ plan: scene.plan, db, registry, log: quiet });
    try {
      const H = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
      const sent: [number, number][] = [[0, 600], [1, 700], [2, 50], [3, 25], [5, 300], [9, 40]];
      // Two windows, in time order (nothing late).
      const items = [0, 1].flatMap((w) =>
        sent.map(([d, bytes], k) => ({
          ...event(dev(d), bytes + w, H + 60_000 + w * 340_000 + k * 1_000),
          partition: d % 2,
        }))
      );
      await produce(scene.topic, items);
      await waitSettled(al.layer, scene.topic, db);
      await waitCommitted(al.layer, scene.topic);

      const perEmail = new Map<string, number>();
      for (const [d, bytes] of sent) {
        const email = d < 6 ? `user${d >> 1}@example.com` : "unknown";
        perEmail.set(email, (perEmail.get(email) ?? 0) + 2 * bytes + 1);
      }
      const ranked = [...perEmail].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
      const range = `from=${iso(H)}&to=${iso(H + HOUR)}`;
      const top = () => getJson(app, `/api/v1/metrics/email_bytes_total/top?${range}&limit=10`);
      const breaches = () => getJson(app, `/api/v1/quota/breaches?${range}`);
      const user0 = perEmail.get("user0@example.com")!;

      assert.deepEqual(
        (await top()).top,
        ranked.map(([id, total]) => ({
          id,
          total,
          hours: 1,
          batchHours: 0,
          speedHours: 1,
          final: false,
        })),
      );
      assert.deepEqual((await breaches()).breaches, [{
        email: "user0@example.com",
        usage: user0,
        quota: 1_000,
        over: user0 - 1_000,
        timestamp: iso(H),
        source: "speed",
      }]);

      const batch = createBatchRunner({
        plan: scene.plan,
        db,
        store: openStore(scene.plan.lake),
        log: quiet,
      });
      const run = await batch.runHour(H, "manual");
      assert.equal(run.status, "succeeded", run.error ?? "");
      await batch.idle();

      assert.deepEqual(
        (await top()).top,
        ranked.map(([id, total]) => ({
          id,
          total,
          hours: 1,
          batchHours: 1,
          speedHours: 0,
          final: true,
        })),
      );
      assert.deepEqual((await breaches()).breaches, [{
        email: "user0@example.com",
        usage: user0,
        quota: 1_000,
        over: user0 - 1_000,
        timestamp: iso(H),
        source: "batch",
      }]);
    } finally {
      await al.stop();
      await db.close();
      await scene.drop();
    }
  },
});
