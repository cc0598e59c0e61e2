/**
 * The scenario of a pipeline that was down: a topic holds a backlog of more
 * than a million events over several past hours (late and malformed ones
 * among them), the database is empty, and `main.ts start` (real Kafka,
 * PostgreSQL, a local lake, default batch settings) is SIGKILLed three times
 * while it catches up and started again each time. With no run by hand, the
 * hourly tables end exactly as the test computes them from the events it
 * produced, and no hour was run before the lake held all of it: each hour's
 * one successful run read every one of its events. Then late events make a
 * batched hour stale and the process is SIGKILLed in the middle of the
 * re-run: started again, the hour ends batched and exact.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { createGenerator, type GeneratedItem } from "../../src/simulator/generator.ts";
import { freshDatabase, freshTopic, kafkaBrokers } from "../_support/services.ts";
import { endOffsets, produce, validEvents } from "../_support/speed_fixture.ts";
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
import { migrate, openDb } from "../../src/db/mod.ts";
import { freePort, spawnStart, type StartProcess, until } from "../_support/start_process.ts";

const HOUR = 3_600_000;
const EVENTS = 1_050_000;

/** `start` with a consumer group of its own (a SIGKILLed member would hold its partitions for the session timeout). */
function startAt(config: string, dir: string, n: number, apiPort: number): StartProcess {
  return spawnStart(config, `${dir}/start-${n}.log`, apiPort, {
    KAFKA_GROUP: `backlog-${n}-${crypto.randomUUID()}`,
  });
}

async function kill(s: StartProcess): Promise<void> {
  s.kill();
  await s.proc.status;
}

Deno.test({
  name:
    "start on a backlog of past hours, SIGKILLed three times while catching up: exact hourly tables and quota breaches, no hour run before it was complete; SIGKILL during a re-run ends exact",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const topic = await freshTopic("backlog", 3);
    const fresh = await freshDatabase("backlog");
    const dir = await Deno.makeTempDir({ prefix: "backlog_" });
    const apiPort = freePort();
    // Three and a half hours of events, ending an hour and a half ago: every
    // hour of them is past its grace.
    const h0 = Math.floor(Date.now() / HOUR) * HOUR - 5 * HOUR;
    const gen = createGenerator({
      seed: 2026,
      devices: 2_000,
      antennas: 20,
      startMs: h0,
      rate: EVENTS / (3.5 * 3_600),
      lateShare: 0.05,
      maxLatenessMs: 10_000, // within speed.allowed_lateness (15 s)
      malformedShare: 0.01,
    });
    const items: GeneratedItem[] = [];
    for (let i = 0; i < EVENTS; i++) {
      const item = gen.next();
      // Late events pushed before the first hour would make a fifth, partial hour.
      if (!item.event || item.event.timestamp * 1000 >= h0) items.push(item);
    }
    for (let i = 0; i < items.length; i += 100_000) {
      await produce(
        topic,
        items.slice(i, i + 100_000).map((x) => ({ key: x.key, value: x.value })),
      );
    }
    const total = [...(await endOffsets(topic)).values()].reduce((a, b) => a + b, 0);
    assert.equal(total, items.length);
    const events = validEvents(items);
    const users = testUsers([...new Set(events.map((e) => e.id))].sort(), 900_000);
    const db = await openDb({ url: fresh.url });
    await migrate(db);
    await insertTestUsers(db, users);

    const config = `${dir}/pipeline.yaml`;
    const write = (batch = "") =>
      Deno.writeTextFile(
        config,
        `source:
  kind: kafka
  kafka:
    brokers: ${kafkaBrokers().join(",")}
    topic: ${topic}
    group: \${KAFKA_GROUP}
    dead_letter_topic: ${topic}.dlq
lake:
  uri: file://${dir}/lake
  roll: { max_rows: 50000, max_bytes: 64MiB, max_age: 5s }
database:
  url: ${fresh.url}
api:
  port: ${apiPort}
${batch}`,
      );
    await write();
    const consumed = async () => {
      const [{ n }] = await db.query<{ n: number }>(
        "SELECT COALESCE(sum(next_offset), 0)::bigint AS n FROM speed_progress",
      );
      return Number(n);
    };
    const dataHours = [...eventsPerHour(events).keys()].sort((a, b) => a - b);
    assert.ok(dataHours.length >= 3, "at least three past hours");
    let starts = 0;
    let current: StartProcess | undefined;
    try {
      for (const share of [0.15, 0.45, 0.75]) {
        current = startAt(config, dir, starts++, apiPort);
        await until(
          `${share * 100} % consumed`,
          async () => (await consumed()) >= share * total ? true : undefined,
          240_000,
        );
        await kill(current);
        await delay(1_000 + Math.random() * 2_000);
      }
      current = startAt(config, dir, starts++, apiPort);
      const batched = await until("every hour of the backlog batched", async () => {
        const rows = await db.query<{ hour: Date }>("SELECT hour FROM batch_hours_current");
        const hours = new Set(rows.map((r) => r.hour.getTime()));
        return dataHours.every((h) => hours.has(h)) ? hours : undefined;
      }, 300_000);
      assert.ok(batched.size >= dataHours.length);

      assert.deepEqual(entries(await readHourly(db)), entries(expectedHourly(events, users)));
      const breaches = expectedBreaches(events, users);
      assert.ok(breaches.size > 0, "the test has users over quota");
      assert.deepEqual(entries(await readBreaches(db)), entries(breaches));
      // No hour was run before it was complete: each data hour has exactly one
      // successful run, and it read every valid event the test produced for it.
      const perHour = eventsPerHour(events);
      const runs = await readRuns(db);
      for (const h of dataHours) {
        const ok = runs.filter((r) => r.hour === h && r.status === "succeeded");
        assert.equal(
          ok.length,
          1,
          `one successful run of ${new Date(h).toISOString()}: ${JSON.stringify(ok)}`,
        );
        assert.equal(ok[0].rowsRead, perHour.get(h), `rows read for ${new Date(h).toISOString()}`);
        assert.equal(ok[0].lakeComplete, true);
        assert.equal(ok[0].trigger, "schedule");
      }
      for (const r of runs.filter((r) => r.status !== "succeeded")) {
        // Only a run a SIGKILL cut short, taken over by the next start.
        assert.equal(r.status, "failed", JSON.stringify(r));
        assert.match(r.error ?? "", /is gone|lease expired/);
      }
      const hours = await (await fetch(
        `http://127.0.0.1:${apiPort}/api/v1/hours?from=${new Date(h0).toISOString()}&to=${
          new Date(dataHours[dataHours.length - 1] + HOUR).toISOString()
        }`,
      )).json() as { hours: { state: string }[]; rule: string };
      assert.equal(hours.rule, "completeness");
      assert.deepEqual(hours.hours.map((h) => h.state), dataHours.map(() => "batched"));

      // Late events for the first hour (beyond the grace) make it stale; the
      // process is killed while it runs the hour again.
      assert.equal(await current.stop(), 0, "a clean stop");
      await write("batch:\n  rerun_after: 1s\n");
      current = startAt(config, dir, starts++, apiPort);
      const lateGen = createGenerator({
        seed: 7,
        devices: 2_000,
        antennas: 20,
        startMs: h0 + 60_000,
        rate: 2,
      });
      const late: GeneratedItem[] = [];
      let killedInRerun = false;
      for (let attempt = 0; attempt < 4 && !killedInRerun; attempt++) {
        const more = Array.from({ length: 500 }, () => lateGen.next());
        late.push(...more);
        await produce(topic, more.map((x) => ({ key: x.key, value: x.value })));
        const seen = await until("a re-run of the stale hour", async () => {
          const rows = await db.query<{ status: string }>(
            `SELECT status FROM batch_runs WHERE hour = $1::timestamp AND trigger = 'rerun'
             ORDER BY run_id DESC LIMIT 1`,
            [new Date(h0)],
          );
          return rows[0]?.status;
        }, 120_000).catch(() => "none");
        if (seen === "running") {
          await kill(current);
          killedInRerun = true;
          current = startAt(config, dir, starts++, apiPort);
        }
      }
      assert.ok(killedInRerun, "the process was killed during a re-run");
      const all = [...events, ...validEvents(late)];
      await until("the stale hour batched again, exact", async () => {
        const [{ stale, running }] = await db.query<{ stale: number; running: number }>(
          `SELECT (SELECT count(*) FROM batch_hours b WHERE NOT EXISTS
              (SELECT 1 FROM batch_hours_current c WHERE c.hour = b.hour))::int AS stale,
            (SELECT count(*) FROM batch_runs WHERE status = 'running')::int AS running`,
        );
        return stale === 0 && running === 0 ? true : undefined;
      }, 120_000);
      assert.deepEqual(entries(await readHourly(db)), entries(expectedHourly(all, users)));
      assert.deepEqual(entries(await readBreaches(db)), entries(expectedBreaches(all, users)));
      const reruns = (await readRuns(db)).filter((r) => r.trigger === "rerun");
      assert.ok(
        reruns.some((r) => r.status === "failed" && /is gone/.test(r.error ?? "")),
        JSON.stringify(reruns),
      );
      assert.equal(reruns[reruns.length - 1].status, "succeeded");
      assert.equal(await current.stop(), 0, "a clean stop");
      current = undefined;
    } catch (e) {
      // What the processes said, for the failure report.
      for (let i = 0; i < starts; i++) {
        const text = await Deno.readTextFile(`${dir}/start-${i}.log`).catch(() => "");
        console.error(`--- start-${i}.log (last lines)\n${text.split("\n").slice(-30).join("\n")}`);
      }
      throw e;
    } finally {
      if (current) await kill(current).catch(() => {});
      await db.close();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
