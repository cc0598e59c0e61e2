/**
 * Complete hours on real Kafka, PostgreSQL and a local lake: the batch layer
 * runs an hour only once the lake holds all of it — every partition of the
 * topic, those of another instance of the group and those that never had an
 * event included — and runs a batched hour again when late events reach the
 * lake for it. Every expectation is computed here from the produced events.
 */
import assert from "node:assert/strict";
import { createBatchRunner, type RunSummary } from "../../src/batch/mod.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import { listHour, openStore } from "../../src/lake/mod.ts";
import { createLogger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator, type GeneratedItem } from "../../src/simulator/generator.ts";
import { type SpeedLayer, startSpeedLayer } from "../../src/speed/mod.ts";
import { createApp } from "../../src/api/mod.ts";
import { kafkaBrokers } from "../_support/services.ts";
import {
  endOffsets,
  produce,
  speedScene,
  validEvents,
  waitCommitted,
  waitFor,
} from "../_support/speed_fixture.ts";
import {
  entries,
  eventsPerHour,
  expectedBreaches,
  expectedHourly,
  insertTestUsers,
  readBreaches,
  readHourly,
  readRuns,
  testUsers,
} from "../_support/hourly_expect.ts";

const HOUR = 3_600_000;
const quiet = createLogger({ test: "batch_complete_hours" });

function kafkaSource(topic: string, group: string) {
  return createKafkaSource({
    brokers: kafkaBrokers(),
    clientId: "complete-hours-test",
    topic,
    group,
    fromBeginning: true,
  });
}

/** Three whole past hours of events, late ones within the lateness, some malformed. */
function threeHours(seed: number, count: number, devices: number) {
  const h0 = Math.floor(Date.now() / HOUR) * HOUR - 4 * HOUR;
  const gen = createGenerator({
    seed,
    devices,
    antennas: 6,
    startMs: h0,
    rate: count / (3 * 3_600),
    lateShare: 0.05,
    maxLatenessMs: 10_000,
    malformedShare: 0.01,
  });
  // Late events stay inside the first hour: the generator only pushes times back.
  const items = Array.from({ length: count }, () => gen.next())
    .filter((i) => !i.event || i.event.timestamp * 1000 >= h0);
  return { h0, items };
}

Deno.test({
  name:
    "two instances of a group: no hour is batched before every partition of both has passed it, then each hour once, exact",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const scene = await speedScene("complete-two", 3, { latenessMs: 15_000 });
    const { topic, plan } = scene;
    const { h0, items } = threeHours(21, 12_000, 60);
    await produce(topic, items.map((i) => ({ key: i.key, value: i.value })));
    const events = validEvents(items);
    const users = testUsers([...new Set(events.map((e) => e.id))].sort(), 150_000);
    const db = await openDb({ url: scene.dbUrl });
    const store = openStore(plan.lake);
    const group = plan.source.kafka.group;
    // B owns partitions but is held back: its source starts paused.
    const sourceB = kafkaSource(topic, group);
    sourceB.pause();
    const layers: { stop(): Promise<void> }[] = [];
    try {
      await migrate(db);
      await insertTestUsers(db, users);
      const b = await startSpeedLayer({
        plan,
        db,
        store,
        source: sourceB,
        registry: new Registry(),
      });
      layers.push(b);
      const a = await startSpeedLayer({
        plan,
        db,
        store,
        source: kafkaSource(topic, group),
        registry: new Registry(),
      });
      layers.push(a);
      await waitFor(
        "both instances own partitions",
        () =>
          a.status().partitions.length > 0 && b.status().partitions.length > 0 &&
          a.status().partitions.length + b.status().partitions.length === 3,
        60_000,
      );
      const ends = await endOffsets(topic);
      const mine = a.status().partitions.map((p) => p.partition);
      await waitFor(
        "A has committed its partitions",
        () =>
          a.status().partitions.every((p) =>
            p.committedOffset >= ends.get(p.partition)! && p.storedOffset >= ends.get(p.partition)!
          ),
        60_000,
      );
      const runner = createBatchRunner({ plan, db, store, log: quiet, registry: new Registry() });
      // A's partitions are complete past every hour; B's are not.
      await waitFor("A's completeness recorded", async () => {
        const c = (await runner.hours(h0, h0 + 2 * HOUR)).completeness!;
        return mine.every((p) =>
          (c.perPartition.find((x) => x.partition === p)?.completeMs ?? -Infinity) >=
            h0 + 3 * HOUR - 60_000
        );
      });
      assert.deepEqual(await runner.runDue(), [], "nothing runs while B is behind");
      const report = await runner.hours(h0, h0 + 2 * HOUR);
      assert.equal(report.rule, "completeness");
      assert.deepEqual(report.hours.map((h) => h.state), [
        "incomplete",
        "incomplete",
        "incomplete",
      ]);
      assert.equal(report.completeness!.partitions, 3);

      sourceB.resume();
      await waitFor(
        "B has stored its partitions",
        () => b.status().partitions.every((p) => p.storedOffset >= ends.get(p.partition)!),
        60_000,
      );
      // The last hour completes by the caught-up rule (no event after it).
      await waitFor(
        "every hour complete",
        async () =>
          (await runner.hours(h0, h0 + 2 * HOUR)).hours.every((h) => h.state === "complete"),
        60_000,
      );
      assertFirstRuns(await runner.runDue(), h0);
      assert.deepEqual(await runner.runDue(), [], "each hour once");

      const perHour = eventsPerHour(events);
      for (const r of await readRuns(db)) {
        assert.equal(r.status, "succeeded");
        assert.equal(r.trigger, "schedule");
        assert.equal(r.lakeComplete, true);
        assert.equal(
          r.rowsRead,
          perHour.get(r.hour) ?? 0,
          `rows read for ${new Date(r.hour).toISOString()}`,
        );
      }
      assert.deepEqual(entries(await readHourly(db)), entries(expectedHourly(events, users)));
      const breaches = expectedBreaches(events, users);
      assert.ok(breaches.size > 0, "the test has users over quota");
      assert.deepEqual(entries(await readBreaches(db)), entries(breaches));
      assert.deepEqual(
        (await runner.hours(h0, h0 + 2 * HOUR)).hours.map((h) => h.state),
        ["batched", "batched", "batched"],
      );
    } finally {
      for (const l of layers.reverse()) await l.stop();
      await db.close();
      await scene.drop();
    }
  },
});

Deno.test({
  name:
    "late events for a batched hour make it stale; it runs again once after batch.rerun_after and ends exact; an idle partition holds nothing back; hourly distinct counts are exact",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const scene = await speedScene("complete-stale", 3, {
      latenessMs: 15_000,
      extraYaml: "batch:\n  rerun_after: 1h\n",
    });
    const { topic, plan } = scene;
    const { h0, items } = threeHours(5, 6_000, 40);
    // Partitions 0 and 1 only: partition 2 never has an event before the late ones.
    const onTime = items.map((i, n) => ({ ...i, partition: n % 2 }));
    await produce(
      topic,
      onTime.map((i) => ({ key: i.key, value: i.value, partition: i.partition })),
    );
    const events = validEvents(items);
    const users = testUsers([...new Set(events.map((e) => e.id))].sort());
    const db = await openDb({ url: scene.dbUrl });
    const store = openStore(plan.lake);
    const registry = new Registry();
    let layer: SpeedLayer | undefined;
    let now = Date.now();
    try {
      await migrate(db);
      await insertTestUsers(db, users);
      const speed = await startSpeedLayer({
        plan,
        db,
        store,
        source: kafkaSource(topic, plan.source.kafka.group),
        registry: new Registry(),
      });
      layer = speed;
      const runner = createBatchRunner({ plan, db, store, log: quiet, registry, clock: () => now });
      await waitCommitted(speed, topic, 60_000);
      await waitFor(
        "every hour complete",
        async () =>
          (await runner.hours(h0, h0 + 2 * HOUR)).hours.every((h) => h.state === "complete"),
        60_000,
      );
      const idle = (await runner.hours(h0, h0)).completeness!.perPartition.find((p) =>
        p.partition === 2
      )!;
      assert.equal(idle.lakeOffset, 0, "partition 2 has no event");
      assert.ok(idle.caughtUpMs > h0 + 3 * HOUR, "…and counts as caught up");
      assertFirstRuns(await runner.runDue(), h0);

      // Hourly distinct devices per antenna from the speed windows (a speed-only metric).
      const distinct = new Map<string, Set<string>>();
      for (const e of events) {
        const k = `${Math.floor((e.timestamp * 1000) / HOUR) * HOUR}|${e.antenna_id}`;
        if (!distinct.has(k)) distinct.set(k, new Set());
        distinct.get(k)!.add(e.id);
      }
      const servedDistinct = await db.query<{ timestamp: Date; id: string; value: number }>(
        `SELECT timestamp, id, value FROM serving_hourly WHERE type = 'antenna_devices'`,
      );
      assert.deepEqual(
        entries(
          new Map(servedDistinct.map((r) => [`${r.timestamp.getTime()}|${r.id}`, Number(r.value)])),
        ),
        entries(new Map([...distinct].map(([k, s]) => [k, s.size]))),
      );
      // The API's hourly series folds the same way.
      const app = createApp({ plan, db, registry: new Registry(), log: quiet });
      const res = await app.request(
        `/api/v1/metrics/antenna_devices/series?granularity=1h&source=speed&from=${
          new Date(h0).toISOString()
        }&to=${new Date(h0 + HOUR).toISOString()}`,
      );
      assert.equal(res.status, 200);
      const body = await res.json() as {
        points: { timestamp: string; id: string; value: number }[];
      };
      assert.deepEqual(
        entries(new Map(body.points.map((p) => [`${Date.parse(p.timestamp)}|${p.id}`, p.value]))),
        entries(
          new Map(
            [...distinct].filter(([k]) => k.startsWith(`${h0}|`)).map(([k, v]) => [k, v.size]),
          ),
        ),
      );

      // Events of the first hour, an hour and more late, on a busy and on the idle partition.
      const lateGen = createGenerator({
        seed: 99,
        devices: 40,
        antennas: 6,
        startMs: h0 + 600_000,
        rate: 1,
      });
      const late: GeneratedItem[] = Array.from({ length: 120 }, () => lateGen.next());
      const lateEvents = validEvents(late);
      // Partition 2 had no clock: its late events are on time there, in windows
      // that close when it goes idle (60 s windows).
      const lastWindowEndOnTwo = Math.max(
        ...late.filter((_, n) => n % 2 === 0).map((i) =>
          Math.floor(i.event!.timestamp / 60) * 60_000 + 60_000
        ),
      );
      await produce(
        topic,
        late.map((i, n) => ({ key: i.key, value: i.value, partition: n % 2 === 0 ? 0 : 2 })),
      );
      await waitCommitted(speed, topic, 60_000);
      await waitFor(
        "hour 0 stale",
        async () =>
          (await runner.hours(h0, h0 + 2 * HOUR)).hours.map((h) => h.state).join() ===
            "stale,batched,batched",
      );
      const servedSources = await db.query<{ source: string }>(
        `SELECT DISTINCT source FROM serving_hourly
         WHERE type = 'antenna_bytes_total' AND timestamp = $1::timestamp`,
        [new Date(h0)],
      );
      assert.deepEqual(
        servedSources.map((r) => r.source),
        ["speed"],
        "a stale hour is served from the speed layer",
      );
      assert.deepEqual(await runner.runDue(), [], "rerun_after (1h) has not passed");
      // A trickle: more late events for the same hour, still one re-run.
      const trickle = Array.from({ length: 30 }, () => lateGen.next());
      await produce(topic, trickle.map((i) => ({ key: i.key, value: i.value, partition: 1 })));
      await waitCommitted(speed, topic, 60_000);
      const all = [...events, ...lateEvents, ...validEvents(trickle)];
      const lake = await listHour(store, h0);
      assert.ok(lake.length > 0);
      await waitFor(
        "the idle partition's late windows are closed",
        () =>
          speed.status().partitions.every((p) =>
            p.partition !== 2 || (p.watermarkMs ?? 0) >= lastWindowEndOnTwo
          ),
        30_000,
      );

      now = Date.now() + HOUR;
      const again = await runner.runDue();
      assert.deepEqual(
        again.filter((r) => r.trigger === "rerun").map((r) => r.hour),
        [h0],
        "the stale hour, once",
      );
      // An hour later by this clock, the empty hour after the events may be due too.
      assert.ok(again.every((r) => r.trigger === "rerun" || (r.rowsRead === 0 && r.hour > h0)));
      assert.deepEqual(await runner.runDue(), [], "once");
      assert.deepEqual(entries(await readHourly(db)), entries(expectedHourly(all, users)));
      assert.deepEqual(entries(await readBreaches(db)), entries(expectedBreaches(all, users)));
      assert.deepEqual(
        (await runner.hours(h0, h0 + 2 * HOUR)).hours.map((h) => h.state),
        ["batched", "batched", "batched"],
      );
      // The speed layer dropped the late events of partitions 0 and 1 (partition 2's
      // clock was behind them): the difference is what it dropped, nothing unexplained.
      const rec = await db.query<
        { metric: string; difference: number; late_dropped: number; unexplained: number }
      >(
        `SELECT metric, difference, late_dropped, unexplained FROM batch_reconciliation
         WHERE hour = $1::timestamp ORDER BY metric`,
        [new Date(h0)],
      );
      assert.equal(rec.length, 3);
      for (const r of rec) {
        assert.ok(Number(r.difference) > 0, `${r.metric}: the batch has the late events`);
        assert.equal(Number(r.late_dropped), Number(r.difference), r.metric);
        assert.equal(Number(r.unexplained), 0, r.metric);
      }
      assert.equal(
        registry.counter("batch_unexplained_differences_total", "").get({
          metric: "antenna_bytes_total",
        }),
        0,
      );

      // Data that goes missing from the lake is loud: a file of hour 1 removed, the hour run again.
      const files = await listHour(store, h0 + HOUR);
      await store.delete(files[0].key);
      const summary = await runner.runHour(h0 + HOUR, "manual");
      assert.equal(summary.status, "succeeded");
      const lost = await db.query<{ unexplained: number }>(
        `SELECT unexplained FROM batch_reconciliation WHERE hour = $1::timestamp AND metric = 'antenna_bytes_total'`,
        [new Date(h0 + HOUR)],
      );
      assert.ok(Number(lost[0].unexplained) < 0, "the batch lacks what the speed layer counted");
      assert.equal(
        registry.counter("batch_unexplained_differences_total", "").get({
          metric: "antenna_bytes_total",
        }),
        1,
      );
    } finally {
      await layer?.stop();
      await db.close();
      await scene.drop();
    }
  },
});

/**
 * The first pass runs the three hours of events, oldest first, and the empty
 * hours since (the stream went quiet: they are run and noted, not skipped).
 */
function assertFirstRuns(runs: readonly RunSummary[], h0: number): void {
  assert.deepEqual(runs.filter((r) => r.rowsRead > 0).map((r) => r.hour), [
    h0,
    h0 + HOUR,
    h0 + 2 * HOUR,
  ]);
  assert.ok(runs.every((r, i) => i === 0 || r.hour > runs[i - 1].hour), "oldest first");
  assert.ok(runs.every((r) => r.hour <= h0 + 2 * HOUR || r.rowsRead === 0));
}
