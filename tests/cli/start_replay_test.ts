/**
 * `main.ts start` on embedded defaults (the in-process simulator, PGlite, a
 * local lake), starting with three hours of simulated history to catch up on,
 * is SIGKILLed at random moments three times and started again after a pause
 * of a few seconds, then stopped cleanly. The simulator replays like a topic,
 * so at the end the `bytes` view, the lake, the batch tables and the messages
 * the simulator issued agree exactly: every offset of every partition is in
 * the lake (once) or in `dead_letters`, each holds the message the recorded
 * timeline derives for it, the events issued during the pauses were caught
 * up, `bytes` equals window totals this test computes itself from the lake
 * (with the lateness rule re-derived here), and the past hours were batched
 * with exactly the totals and quota breaches this test computes from the lake.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { loadPlan } from "../../src/config/mod.ts";
import { openDb } from "../../src/db/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { createMessageAt, type MessageParams } from "../../src/simulator/message_at.ts";
import { readLake } from "../_support/speed_fixture.ts";
import { freePort } from "../_support/start_process.ts";

const REPO = new URL("../..", import.meta.url).pathname;
const RATE = 30;
const HOUR = 3_600_000;
const WINDOW_MS = 10_000;
const LATENESS_MS = 2_000;

/** `start` as a child process (the Deno binary itself, so signals reach it). */
function spawnStart(config: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "start", "--config", config],
    cwd: REPO,
    env: { LOG_LEVEL: "info" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return { child, log: new Response(child.stderr).text() };
}

/** Waits until the speed layer runs (`/ready`): the API itself opens before it has started. */
async function waitHealthy(api: string, ms = 90_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    try {
      const r = await fetch(`${api}/ready`);
      const body = await r.json();
      if (body.components?.speed?.running === true) return;
    } catch { /* not listening yet */ }
    await delay(100);
  }
  throw new Error("timed out waiting for the speed layer in GET /ready");
}

/** The source's lag per partition as /ready reports it (issued end − next delivered). */
async function lags(api: string): Promise<number[]> {
  const r = await fetch(`${api}/ready`);
  const body = await r.json();
  return Object.values(body.components.source.lag as Record<string, number>);
}

Deno.test({
  name:
    "start on embedded defaults, SIGKILLed three times, ends with bytes, lake and simulator in exact agreement",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "start-replay-" });
    const apiPort = freePort();
    const api = `http://127.0.0.1:${apiPort}`;
    const config = `${dir}/pipeline.yaml`;
    // Embedded defaults; short windows and lake rolls so a minute has many of
    // each, and no idle closing (it moves a clock by wall time, which this
    // test's own arithmetic could not know).
    await Deno.writeTextFile(
      config,
      `
source:
  kind: simulator
  simulator:
    { rate: ${RATE}, seed: 11, late_share: 0.05, malformed_share: 0.02, max_lateness: 6s, history: 3h, max_backlog: 3h }
speed:
  window: ${WINDOW_MS}ms
  allowed_lateness: ${LATENESS_MS}ms
  idle_timeout: 1h
  flush_interval: 200ms
lake:
  uri: file://./lake
  roll: { max_rows: 1500, max_bytes: 64MiB, max_age: 2s }
  compaction: { after: 30s }
batch:
  grace: 40s
  rerun_after: 1s
database:
  embedded: { dir: ./pglite, port: 0 }
api:
  port: ${apiPort}
`,
    );
    const startedAt = Date.now();
    let batchedHours: number[] = [];
    const schedule: string[] = [];
    const pauses: [number, number][] = [];
    const logs: Promise<string>[] = [];
    let run = spawnStart(config);
    try {
      for (let i = 0; i < 3; i++) {
        logs.push(run.log);
        await waitHealthy(api);
        const up = 1_000 + Math.floor(Math.random() * 7_000);
        await delay(up);
        run.child.kill("SIGKILL");
        await run.child.status;
        const killedAt = Date.now();
        const pause = 3_000 + Math.floor(Math.random() * 3_000);
        schedule.push(`run ${i + 1}: killed ${up} ms after ready, down ${pause} ms`);
        await delay(pause);
        pauses.push([killedAt, Date.now()]);
        run = spawnStart(config);
      }
      logs.push(run.log);
      await waitHealthy(api);
      // Caught up: the history and the backlog of the pauses are consumed.
      const until = Date.now() + 240_000;
      await delay(3_000);
      while ((await lags(api)).some((l) => l > RATE) && Date.now() < until) await delay(200);
      // The past hours are batched, none stale (late events re-run them at once).
      const h0 = Math.floor((startedAt - 3 * HOUR) / HOUR) * HOUR;
      const past = [h0, h0 + HOUR, h0 + 2 * HOUR];
      const batchedBy = Date.now() + 180_000;
      while (Date.now() < batchedBy) {
        const r = await fetch(
          `${api}/api/v1/hours?from=${new Date(h0).toISOString()}&to=${
            new Date(h0 + 3 * HOUR).toISOString()
          }`,
        );
        const states = ((await r.json()).hours as { state: string }[]).map((h) => h.state);
        if (states.every((s) => s === "batched")) break;
        await delay(500);
      }
      batchedHours = past;
      run.child.kill("SIGTERM");
      const status = await run.child.status;
      const last = await run.log;
      assert.equal(status.code, 0, last.slice(-2000));
      assert.match(last, /stopped cleanly/);
    } finally {
      try {
        run.child.kill("SIGKILL");
      } catch { /* exited */ }
    }
    const why = schedule.join("; ");

    // Each restart resumed with the pause as a backlog to catch up on.
    for (const [i, text] of (await Promise.all(logs)).entries()) {
      const started = text.split("\n").find((l) => l.includes('"simulator source started"'));
      assert.ok(started, `run ${i + 1} started its simulator source (${why})`);
      if (i > 0) {
        const backlog = JSON.parse(started).backlog as number;
        const [a, b] = pauses[i - 1];
        assert.ok(
          backlog >= ((b - a) / 1000) * RATE * 0.9,
          `run ${i + 1} backlog ${backlog} (${why})`,
        );
      }
    }

    const plan = await loadPlan(config);
    const db = await openDb({ embeddedDir: plan.database.embedded.dir });
    try {
      const topic = plan.source.kafka.topic;
      const progress = await db.query<{ partition: number; next_offset: number; watermark: Date }>(
        `SELECT "partition", next_offset, watermark FROM speed_progress WHERE topic = $1 ORDER BY 1`,
        [topic],
      );
      const timeline = await db.query<
        {
          partition: number;
          from_offset: number;
          origin_ms: number;
          rate: number;
          params: MessageParams;
        }
      >(
        `SELECT "partition", from_offset, origin_ms, rate, params FROM simulator_timeline
         WHERE topic = $1 ORDER BY 1, 2`,
        [topic],
      );
      const letters = await db.query<{ partition: number; offset: number; payload: Uint8Array }>(
        `SELECT "partition", "offset", payload FROM dead_letters WHERE topic = $1`,
        [topic],
      );
      const bytesRows = await db.query<
        { timestamp: Date; id: string; value: number; type: string }
      >(
        `SELECT "timestamp", id, value, type FROM bytes`,
      );
      const lake = await readLake(openStore(plan.lake));
      const users = new Set(
        (await db.query<{ id: string }>("SELECT id FROM user_metadata")).map((u) => u.id),
      );

      // No parameter change and no pause beyond max_backlog: one segment per partition.
      assert.deepEqual(timeline.map((t) => [t.partition, t.from_offset]), [[0, 0], [1, 0], [2, 0]]);
      assert.equal(progress.length, 3);

      // Every offset exactly once: in the lake, or dead-lettered.
      const where = new Map<string, "lake" | "dlq">();
      for (const r of lake) {
        const k = `${r.partition}:${Number(r.offset)}`;
        assert.ok(!where.has(k), `lake row ${k} twice (${why})`);
        where.set(k, "lake");
      }
      for (const l of letters) {
        const k = `${l.partition}:${l.offset}`;
        assert.ok(!where.has(k), `${k} both in the lake and dead-lettered (${why})`);
        where.set(k, "dlq");
      }
      for (const p of progress) {
        for (let o = 0; o < p.next_offset; o++) {
          assert.ok(
            where.has(`${p.partition}:${o}`),
            `offset ${p.partition}:${o} missing (${why})`,
          );
        }
      }
      assert.equal(where.size, progress.reduce((n, p) => n + p.next_offset, 0), why);

      // Each holds the message the simulator derives for it from the timeline
      // (issue time: origin + (o - from) * 1000 / rate, worked out here).
      const seg = new Map(timeline.map((t) => [t.partition, t]));
      const issueMs = (p: number, o: number) => {
        const s = seg.get(p)!;
        return Math.floor(s.origin_ms + ((o - s.from_offset) * 1000) / s.rate);
      };
      const messageAt = createMessageAt(
        typeof timeline[0].params === "string"
          ? JSON.parse(timeline[0].params)
          : timeline[0].params,
      );
      const decoder = new TextDecoder();
      for (const r of lake) {
        const p = r.partition, o = Number(r.offset);
        const m = messageAt(p, o, issueMs(p, o));
        assert.ok(m.event, `${p}:${o} is valid in the lake but was issued malformed`);
        assert.ok(users.has(r.id), `device ${r.id} has a seeded user`);
        assert.deepEqual(
          [r.id, r.antenna_id, r.app, Number(r.bytes), r.timestamp.getTime()],
          [m.event.id, m.event.antenna_id, m.event.app, m.event.bytes, m.event.timestamp * 1000],
          `lake ${p}:${o} (${why})`,
        );
      }
      for (const l of letters) {
        const m = messageAt(l.partition, l.offset, issueMs(l.partition, l.offset));
        assert.ok(m.malformed, `${l.partition}:${l.offset} dead-lettered but issued valid`);
        assert.equal(decoder.decode(l.payload), decoder.decode(m.value));
      }

      // The pauses were caught up: their messages are there, so are events stamped inside them.
      const eventSeconds = new Set(lake.map((r) => r.timestamp.getTime() / 1000));
      for (const [a, b] of pauses) {
        let inPause = 0;
        for (const p of progress) {
          for (let o = 0; o < p.next_offset; o++) {
            const t = issueMs(p.partition, o);
            if (t >= a && t < b) inPause++;
          }
        }
        assert.ok(
          Math.abs(inPause - ((b - a) / 1000) * RATE) < RATE,
          `${inPause} issued in a pause`,
        );
        for (let s = Math.ceil(a / 1000); s < Math.floor(b / 1000); s++) {
          assert.ok(eventSeconds.has(s), `events of ${new Date(s * 1000).toISOString()} (${why})`);
        }
      }

      // `bytes` from the lake, computed here: per partition in offset order,
      // watermark = highest event time so far − lateness; an event whose
      // window ended at least `lateness` before the watermark is dropped (the
      // lake keeps it); a window shows once its partition's final watermark
      // has reached its end.
      const partial = new Map<number, Map<string, number>>();
      const finalWm = new Map<number, number>();
      const byPartition = Map.groupBy(lake, (r) => r.partition);
      let dropped = 0, updated = 0;
      for (const [p, rows] of byPartition) {
        rows.sort((x, y) => Number(x.offset) - Number(y.offset));
        const sums = new Map<string, number>();
        let clock = -Infinity;
        for (const r of rows) {
          const t = r.timestamp.getTime();
          const start = Math.floor(t / WINDOW_MS) * WINDOW_MS;
          const end = start + WINDOW_MS;
          const wm = clock - LATENESS_MS;
          if (wm >= end + LATENESS_MS) {
            dropped++;
          } else {
            if (wm >= end) updated++;
            for (
              const [type, id] of [["antenna_bytes_total", r.antenna_id], [
                "app_bytes_total",
                r.app,
              ], ["user_bytes_total", r.id]]
            ) {
              const k = `${type}|${start}|${id}`;
              sums.set(k, (sums.get(k) ?? 0) + Number(r.bytes));
            }
          }
          clock = Math.max(clock, t);
        }
        partial.set(p, sums);
        finalWm.set(p, clock - LATENESS_MS);
      }
      assert.ok(
        dropped > 0 && updated > 0,
        `late events of both kinds (${dropped} dropped, ${updated} updated)`,
      );
      for (const p of progress) {
        assert.equal(
          p.watermark.getTime(),
          finalWm.get(p.partition),
          `watermark of ${p.partition}`,
        );
      }
      const expected = new Map<string, number>();
      for (const [p, sums] of partial) {
        for (const [k, v] of sums) {
          const start = Number(k.split("|")[1]);
          if (start + WINDOW_MS <= finalWm.get(p)!) expected.set(k, (expected.get(k) ?? 0) + v);
        }
      }
      const actual = new Map(
        bytesRows.map((r) => [`${r.type}|${r.timestamp.getTime()}|${r.id}`, Number(r.value)]),
      );
      const sorted = (m: Map<string, number>) => [...m].sort((x, y) => (x[0] < y[0] ? -1 : 1));
      assert.ok(expected.size > 50, `${expected.size} windows expected`);
      assert.deepEqual(sorted(actual), sorted(expected), why);

      // The batch tables: every past hour batched once the lake held all of it,
      // with the totals and breaches of the lake's events, joined here with the
      // seeded users (an email's quota is the largest of its devices').
      const current = new Set(
        (await db.query<{ hour: Date }>("SELECT hour FROM batch_hours_current")).map((r) =>
          r.hour.getTime()
        ),
      );
      for (const h of batchedHours) {
        assert.ok(current.has(h), `hour ${new Date(h).toISOString()} batched (${why})`);
      }
      const people = await db.query<{ id: string; email: string; quota: number }>(
        "SELECT id, email, quota FROM user_metadata",
      );
      const emailOf = new Map(people.map((u) => [u.id, u.email]));
      const quotaOf = new Map<string, number>();
      for (const u of people) {
        quotaOf.set(u.email, Math.max(quotaOf.get(u.email) ?? 0, Number(u.quota)));
      }
      const hourly = new Map<string, number>();
      const usage = new Map<string, number>();
      const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);
      for (const r of lake) {
        const h = Math.floor(r.timestamp.getTime() / HOUR) * HOUR;
        if (!current.has(h)) continue;
        const b = Number(r.bytes);
        add(hourly, `antenna_bytes_total|${h}|${r.antenna_id}`, b);
        add(hourly, `email_bytes_total|${h}|${emailOf.get(r.id)}`, b);
        add(hourly, `app_bytes_total|${h}|${r.app}`, b);
        add(usage, `${h}|${emailOf.get(r.id)}`, b);
      }
      const hourlyRows = await db.query<
        { timestamp: Date; id: string; value: number; type: string }
      >("SELECT timestamp, id, value, type FROM bytes_hourly");
      assert.deepEqual(
        sorted(
          new Map(
            hourlyRows.map((r) => [`${r.type}|${r.timestamp.getTime()}|${r.id}`, Number(r.value)]),
          ),
        ),
        sorted(hourly),
        why,
      );
      const over = new Map(
        [...usage].filter(([k, u]) => u > quotaOf.get(k.split("|")[1])!),
      );
      assert.ok(over.size > 0, "some simulated users went over their quota");
      const breaches = await db.query<{ timestamp: Date; email: string; usage: number }>(
        "SELECT timestamp, email, usage FROM user_quota_limit",
      );
      assert.deepEqual(
        sorted(
          new Map(breaches.map((r) => [`${r.timestamp.getTime()}|${r.email}`, Number(r.usage)])),
        ),
        sorted(over),
        why,
      );
    } finally {
      await db.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
