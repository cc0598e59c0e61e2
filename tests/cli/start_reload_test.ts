/**
 * Editing pipeline.yaml while `main.ts start` runs (issue 11), end to end on
 * real Kafka, PostgreSQL and a local lake. The first test goes through the
 * speed layer's live switch (src/speed/plan_switch.ts, Layer.applyPlan): the
 * layer keeps its partitions and switches at a recorded offset of each.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createGenerator, type GeneratedItem } from "../../src/simulator/generator.ts";
import { freshDatabase, freshTopic, kafkaBrokers } from "../_support/services.ts";
import { produce, readLake, sorted, validEvents } from "../_support/speed_fixture.ts";
import { planFromYaml } from "../../src/config/load.ts";
import { openStore } from "../../src/lake/mod.ts";
import { closed, spawnStart, streamLive, until } from "../_support/start_process.ts";

const HOUR = 3_600_000;
const WINDOW = 300_000;
const MESSAGING = ["SKYPE", "WHATSAPP", "TELEGRAM"];

function config(o: { topic: string; dbUrl: string; dir: string; port: number; extra?: string }) {
  return `source:
  kind: kafka
  kafka:
    brokers: ${kafkaBrokers().join(",")}
    topic: ${o.topic}
    group: ${o.topic}-g
    dead_letter_topic: ${o.topic}.dlq
speed:
  window: 5m
  allowed_lateness: 5s
  idle_timeout: 10s
  flush_interval: 200ms
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id }
    - { name: app_bytes_total, group_by: app }
${o.extra ?? ""}lake:
  uri: file://${o.dir}/lake
  roll: { max_rows: 2000, max_bytes: 64MiB, max_age: 1s }
  compaction: { enabled: false }
batch:
  enabled: false
  metrics: []
database:
  url: ${o.dbUrl}
api:
  port: ${o.port}
`;
}

const ADDED = `    - name: messaging_bytes_total
      group_by: antenna_id
      field: bytes
      filter:
        in:
          app: [${MESSAGING.join(", ")}]
`;

/** The `bytes` rows the test expects: `type|window|id` → value. */
function expected(items: readonly GeneratedItem[]): Map<string, number> {
  const out = new Map<string, number>();
  const add = (k: string, v: number) => out.set(k, (out.get(k) ?? 0) + v);
  for (const e of validEvents(items)) {
    const w = Math.floor((e.timestamp * 1000) / WINDOW) * WINDOW;
    add(`antenna_bytes_total|${w}|${e.antenna_id}`, e.bytes);
    add(`app_bytes_total|${w}|${e.app}`, e.bytes);
    if (MESSAGING.includes(e.app)) add(`messaging_bytes_total|${w}|${e.antenna_id}`, e.bytes);
  }
  return out;
}

Deno.test({
  name:
    "start: a metric with a filter added to the file while events stream is active within seconds, with its past from the lake and its live windows exact; the other metrics are untouched",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const topic = await freshTopic("reload", 3);
    const fresh = await freshDatabase("reload");
    const dir = await Deno.makeTempDir({ prefix: "reload_" });
    const port = 18641;
    const file = `${dir}/pipeline.yaml`;
    const base = { topic, dbUrl: fresh.url, dir, port };
    await Deno.writeTextFile(file, config(base));

    // Two past hours in the topic, to the minute before now.
    const startMs = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR;
    const gen = createGenerator({
      seed: 5,
      devices: 40,
      antennas: 5,
      startMs,
      rate: 1,
      lateShare: 0.1,
      maxLatenessMs: 3_000,
    });
    const pastCount = Math.floor((Date.now() - 60_000 - startMs) / 1000);
    const past = Array.from({ length: pastCount }, () => gen.next());
    await produce(topic, past.map((i) => ({ key: i.key, value: i.value })));

    const start = spawnStart(file, `${dir}/start.log`, port);
    const live = await streamLive(topic, {
      seed: 6,
      devices: 40,
      antennas: 5,
      perSecond: 100,
      maxLatenessMs: 3_000,
    });
    const sql = postgres(fresh.url, { max: 1, onnotice: () => {} });
    const stored = async () =>
      Number(
        (await sql`SELECT COALESCE(sum(next_offset), 0)::bigint AS n FROM speed_progress
        WHERE topic = ${topic}`)[0].n,
      );
    let items: GeneratedItem[] = [];
    try {
      await until(
        "the past consumed",
        async () => (await stored()) >= pastCount ? true : undefined,
        90_000,
      );
      // The API opened before the speed layer started, so before the past was consumed.
      const before = await start.get("/api/v1/config");
      assert.equal(before.body.generation, 1);

      // The edit, while events stream.
      const t0 = Date.now();
      await Deno.writeTextFile(file, config({ ...base, extra: ADDED }));
      const after = await until("generation 2", async () => {
        const c = await start.get("/api/v1/config");
        return c.body.generation === 2 ? c.body : undefined;
      }, 30_000);
      const tookMs = Date.now() - t0;
      assert.ok(tookMs < 20_000, `active after ${tookMs} ms`);
      assert.notEqual(after.hash, before.body.hash);
      assert.equal(after.rejected, null);
      const produced = live.produced();
      await until(
        "live events under the new plan",
        async () => (await stored()) > pastCount + produced + 300 ? true : undefined,
        30_000,
      );

      items = [...past, ...await live.stop()];
      const total = items.length;
      await until(
        "every event stored",
        async () => (await stored()) >= total ? true : undefined,
        60_000,
      );
      const backfill = await until("the backfill finished", async () => {
        const c = await start.get("/api/v1/config");
        const b = c.body.backfill as {
          active: boolean;
          metrics: { metric: string; state: string; progress: number }[];
        };
        return !b.active && b.metrics.length > 0 ? b : undefined;
      }, 60_000);
      assert.deepEqual(backfill.metrics.map((m) => [m.metric, m.state, m.progress]), [
        ["messaging_bytes_total", "finished", 1],
      ]);

      const want = expected(items);
      const read = async () =>
        new Map(
          (await sql`SELECT type, "timestamp", id, value FROM bytes`).map((
            r,
          ) => [`${r.type}|${(r.timestamp as Date).getTime()}|${r.id}`, Number(r.value)]),
        );
      // The idle timeout closes the last windows once the stream stops.
      await until("every partition past the last window", () => closed(sql, topic, want), 60_000);
      const got = await read();
      for (const metric of ["antenna_bytes_total", "app_bytes_total", "messaging_bytes_total"]) {
        const only = (m: Map<string, number>) =>
          sorted(m).filter(([k]) => k.startsWith(`${metric}|`));
        assert.deepEqual(only(got), only(want), metric);
      }
      // Its past: windows of both past hours, before the edit.
      const windows = [...got.keys()].filter((k) => k.startsWith("messaging_bytes_total|"))
        .map((k) => Number(k.split("|")[1]));
      assert.ok(windows.some((w) => w < startMs + HOUR), "windows of the first past hour");
      assert.ok(windows.some((w) => w + WINDOW > t0), "live windows");

      // One reload, logged once, counted, with its generation and hash in /ready.
      const lines = await start.logLines();
      const reloaded = lines.filter((l) => l.msg === "pipeline reloaded");
      assert.equal(reloaded.length, 1, JSON.stringify(reloaded));
      assert.equal(reloaded[0].generation, 2);
      assert.ok(lines.some((l) => l.msg === "backfill of a partition finished"));
      const metrics = await start.text("/metrics");
      assert.match(metrics, /config_reloads_total\{result="applied"\} 1/);
      const ready = await start.get("/ready");
      const cfg = (ready.body.components as Record<string, Record<string, unknown>>).config;
      assert.equal(cfg.generation, 2);
      assert.equal(cfg.hash, after.hash);
      assert.equal(await start.stop(), 0);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- start's log ---\n${start.tail()}`, {
        cause: e,
      });
    } finally {
      await live.stop().catch(() => {});
      start.kill();
      await sql.end();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "start: an invalid edit (unknown key and bad value) keeps the old plan running; the API shows both problems with their lines; a restart-only edit is refused naming the key",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fresh = await freshDatabase("reload_bad");
    const dir = await Deno.makeTempDir({ prefix: "reload_bad_" });
    const port = 18642;
    const file = `${dir}/pipeline.yaml`;
    const good = `source:
  kind: simulator
  simulator: { rate: 200, seed: 3, max_lateness: 2s }
speed:
  window: 10s
  allowed_lateness: 2s
  idle_timeout: 5s
  flush_interval: 200ms
lake:
  uri: file://./lake
  roll: { max_age: 1s }
database:
  url: ${fresh.url}
  allow_simulator_writes: true
api:
  port: ${port}
`;
    await Deno.writeTextFile(file, good);
    const start = spawnStart(file, `${dir}/start.log`, port);
    const sql = postgres(fresh.url, { max: 1, onnotice: () => {} });
    const stored = async () =>
      Number(
        (await sql`SELECT COALESCE(sum(next_offset), 0)::bigint AS n FROM speed_progress`)[0].n,
      );
    try {
      await until("events stored", async () => (await stored()) > 0 ? true : undefined, 90_000);
      const first = (await start.get("/api/v1/config")).body;

      // Two problems at once: an unknown key (line 9) and a bad value (line 8).
      await Deno.writeTextFile(
        file,
        good.replace("  flush_interval: 200ms", "  flush_interval: soon\n  flush_intervall: 1s"),
      );
      const rejected = await until("the rejected attempt", async () => {
        const c = (await start.get("/api/v1/config")).body;
        return c.rejected ? c : undefined;
      }, 20_000);
      assert.equal(rejected.generation, 1);
      assert.equal(rejected.hash, first.hash);
      const r = rejected.rejected as {
        result: string;
        problems: { line: number; col: number; path: string; text: string }[];
      };
      assert.equal(r.result, "rejected");
      assert.deepEqual(r.problems.map((p) => [p.line, p.path]), [
        [8, "speed.flush_interval"],
        [9, "speed.flush_intervall"],
      ]);
      assert.ok(r.problems.every((p) => p.text.startsWith(`${file}:${p.line}:${p.col}: `)));
      // The old plan keeps running.
      const n = await stored();
      await until(
        "more events stored",
        async () => (await stored()) > n ? true : undefined,
        20_000,
      );
      assert.equal((await start.get("/ready")).status, 200);

      // A restart-only key with a live one: refused whole, naming the key and its line.
      await Deno.writeTextFile(
        file,
        good.replace("window: 10s", "window: 20s").replace(
          "flush_interval: 200ms",
          "flush_interval: 1s",
        ),
      );
      const refused = await until("the refused attempt", async () => {
        const c = (await start.get("/api/v1/config")).body;
        return (c.rejected as { result?: string } | null)?.result === "refused" ? c : undefined;
      }, 20_000);
      const f = refused.rejected as { problems: { line: number; path: string; message: string }[] };
      assert.deepEqual(f.problems.map((p) => [p.line, p.path]), [[5, "speed.window"]]);
      assert.match(
        f.problems[0].message,
        /cannot change while the pipeline runs.*a restart applies it/,
      );
      assert.equal((refused.speed as { flushIntervalMs: number }).flushIntervalMs, 200);
      assert.equal(refused.generation, 1);

      // The good file again, by SIGHUP: unchanged, and the rejection is cleared.
      await Deno.writeTextFile(file, good);
      await until("cleared", async () => {
        const c = (await start.get("/api/v1/config")).body;
        return c.rejected === null ? c : undefined;
      }, 20_000);
      start.proc.kill("SIGHUP");
      await until(
        "the SIGHUP reload",
        async () =>
          (await start.logLines()).filter((l) => l.trigger === "signal").length > 0
            ? true
            : undefined,
        20_000,
      );
      const lines = await start.logLines();
      const outcomes = lines.filter((l) => typeof l.result === "string" && l.component === "config")
        .map((l) => [l.result, l.trigger]);
      assert.deepEqual(outcomes, [
        ["rejected", "watch"],
        ["refused", "watch"],
        ["unchanged", "watch"],
        ["unchanged", "signal"],
      ]);
      const logged = lines.find((l) => l.result === "rejected")!;
      assert.equal((logged.problems as string[]).length, 2);
      assert.match(
        (logged.problems as string[])[0],
        /pipeline\.yaml:8:\d+: speed\.flush_interval: /,
      );
      const metrics = await start.text("/metrics");
      assert.match(metrics, /config_reloads_total\{result="rejected"\} 1/);
      assert.match(metrics, /config_reloads_total\{result="refused"\} 1/);
      assert.match(metrics, /config_generation 1/);
      assert.equal(await start.stop(), 0);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- start's log ---\n${start.tail()}`, {
        cause: e,
      });
    } finally {
      start.kill();
      await sql.end();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "start: a metric added to the file while the pipeline was down gets its history at the next start, equal to the lake's events",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fresh = await freshDatabase("reload_down");
    const dir = await Deno.makeTempDir({ prefix: "reload_down_" });
    const port = 18644;
    const file = `${dir}/pipeline.yaml`;
    const yaml = (extra: string) =>
      `source:
  kind: simulator
  simulator: { rate: 300, seed: 4, late_share: 0.05, max_lateness: 1s, history: 10m }
speed:
  window: 1m
  allowed_lateness: 2s
  idle_timeout: 10s
  flush_interval: 200ms
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id }
${extra}lake:
  uri: file://./lake
  roll: { max_age: 1s }
batch:
  enabled: false
  metrics: []
database:
  url: ${fresh.url}
  allow_simulator_writes: true
api:
  port: ${port}
`;
    await Deno.writeTextFile(file, yaml(""));
    const sql = postgres(fresh.url, { max: 1, onnotice: () => {} });
    let start = spawnStart(file, `${dir}/start-1.log`, port);
    try {
      await until("the history consumed", async () => {
        const [{ n }] = await sql`SELECT count(*)::int AS n FROM speed_partials`;
        return n > 20 ? true : undefined;
      }, 90_000);
      assert.equal(await start.stop(), 0);

      // Edited while down.
      await Deno.writeTextFile(
        file,
        yaml(
          "    - { name: skype_bytes, group_by: antenna_id, filter: { in: { app: [SKYPE] } } }\n",
        ),
      );
      start = spawnStart(file, `${dir}/start-2.log`, port);
      await until("the backfill finished", async () => {
        const b = (await start.get("/api/v1/config")).body.backfill as {
          active: boolean;
          metrics: { metric: string; state: string }[];
        };
        return !b.active &&
            b.metrics.some((m) => m.metric === "skype_bytes" && m.state === "finished")
          ? true
          : undefined;
      }, 60_000);
      await new Promise((r) => setTimeout(r, 1_500));
      assert.ok(
        (await start.logLines()).some((l) =>
          l.msg === "metrics edited while the pipeline was down: handled like a reload"
        ),
      );
      assert.equal(await start.stop(), 0);

      // Everything stored is in the lake (a clean stop flushes both): compare with it.
      const lake = await readLake(openStore(planFromYaml(yaml(""), { env: {}, file }).lake));
      const want = new Map<string, number>();
      for (const r of lake) {
        const w = Math.floor(r.timestamp.getTime() / 60_000) * 60_000;
        const add = (k: string) => want.set(k, (want.get(k) ?? 0) + Number(r.bytes));
        add(`antenna_bytes_total|${w}|${r.antenna_id}`);
        if (r.app === "SKYPE") add(`skype_bytes|${w}|${r.antenna_id}`);
      }
      const rows =
        await sql`SELECT type, "timestamp", id, sum(value)::bigint AS v FROM speed_partials
        GROUP BY type, "timestamp", id`;
      const got = new Map(
        rows.map((r) => [`${r.type}|${(r.timestamp as Date).getTime()}|${r.id}`, Number(r.v)]),
      );
      assert.ok([...want.keys()].filter((k) => k.startsWith("skype_bytes|")).length > 10);
      assert.deepEqual(sorted(got), sorted(want));
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- start's log ---\n${start.tail()}`, {
        cause: e,
      });
    } finally {
      start.kill();
      await sql.end();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
