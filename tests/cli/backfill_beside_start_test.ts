/**
 * `deno task backfill` beside a running `start` (issue 19), end to end on
 * real Kafka, PostgreSQL and a local lake whose files roll every 50 s, as
 * the default 1 m roll does: the speed layer's stored offsets run ahead of
 * the durable lake by up to a roll, so the command waits for the lake,
 * saying why, and ends with exit 0 and the metric's rows as the test
 * computes them from what it produced. Then a live edit adds a metric: its
 * backfill waits for the lake too, and `/api/v1/config` says why while it
 * does; its closing line names the metric.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { createGenerator, type GeneratedItem } from "../../src/simulator/generator.ts";
import { freshDatabase, freshTopic, kafkaBrokers } from "../_support/services.ts";
import { produce, sorted, validEvents } from "../_support/speed_fixture.ts";
import {
  closed,
  spawnStart,
  type StartProcess,
  streamLive,
  until,
} from "../_support/start_process.ts";

const HOUR = 3_600_000;
const WINDOW = 300_000;
const MESSAGING = ["SKYPE", "WHATSAPP", "TELEGRAM"];
const REPO = new URL("../..", import.meta.url).pathname;
const PORT = 18401;

function config(o: { topic: string; dbUrl: string; dir: string; extra?: string }) {
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
    - { name: messaging_bytes_total, group_by: antenna_id, filter: { in: { app: [${
    MESSAGING.join(", ")
  }] } } }
${o.extra ?? ""}lake:
  uri: file://${o.dir}/lake
  roll: { max_rows: 100000, max_bytes: 64MiB, max_age: 50s }
  compaction: { enabled: false }
batch:
  enabled: false
  metrics: []
database:
  url: ${o.dbUrl}
api:
  port: ${PORT}
`;
}

const ADDED = "    - { name: telegram_bytes_total, group_by: antenna_id, " +
  "filter: { in: { app: [TELEGRAM] } } }\n";

/** The `bytes` rows the test expects: `type|window|id` → value. */
function expected(items: readonly GeneratedItem[]): Map<string, number> {
  const out = new Map<string, number>();
  const add = (k: string, v: number) => out.set(k, (out.get(k) ?? 0) + v);
  for (const e of validEvents(items)) {
    const w = Math.floor((e.timestamp * 1000) / WINDOW) * WINDOW;
    add(`antenna_bytes_total|${w}|${e.antenna_id}`, e.bytes);
    if (MESSAGING.includes(e.app)) add(`messaging_bytes_total|${w}|${e.antenna_id}`, e.bytes);
    if (e.app === "TELEGRAM") add(`telegram_bytes_total|${w}|${e.antenna_id}`, e.bytes);
  }
  return out;
}

/** `deno task backfill …` as a user runs it: its exit code, stdout and log. */
async function backfillCli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "backfill", ...args],
    cwd: REPO,
    env: { LOG_LEVEL: "info", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

const jsonLines = (text: string) =>
  text.split("\n").filter((l) => l.startsWith("{") && l.endsWith("}")).map((l) =>
    JSON.parse(l) as Record<string, unknown>
  );

interface BackfillJson {
  active: boolean;
  metrics: {
    metric: string;
    state: string;
    progress: number;
    waiting: { partition: number; reason: string; since: string }[];
  }[];
}

/** Runs the CLI beside `start`: exit 0 after waiting for the lake, saying why, naming the metric. */
async function backfillBesideStart(file: string): Promise<void> {
  const t0 = Date.now();
  const cli = await backfillCli(["--metric", "messaging_bytes_total", "--config", file]);
  const tookMs = Date.now() - t0;
  const cliLog = jsonLines(cli.stderr);
  assert.equal(cli.code, 0, `exit ${cli.code} after ${tookMs} ms:\n${cli.stderr.slice(-3000)}`);
  assert.match(cli.stdout, /^messaging_bytes_total \(speed\) finished partitions=2 /m);
  const waits = cliLog.filter((l) => l.msg === "backfill waits for the lake");
  assert.ok(waits.length > 0, `no wait logged in ${tookMs} ms:\n${cli.stderr.slice(-2000)}`);
  for (const w of waits) {
    assert.equal(w.metric, "messaging_bytes_total");
    assert.match(
      String(w.reason),
      /^waiting for the lake's files up to offset \d+ of partition [01] \(durable up to \d+\): the speed layer rolls them every 50s$/,
    );
  }
  const closing = cliLog.find((l) =>
    l.msg === "backfill of messaging_bytes_total finished: every partition is done"
  );
  assert.equal(closing?.metric, "messaging_bytes_total");
}

/** The added metric's backfill, as `/api/v1/config` shows it: waiting with its reason, then finished. */
async function editedBackfillWaits(start: StartProcess): Promise<void> {
  const waiting = await until("the added metric's backfill waiting", async () => {
    const b = (await start.get("/api/v1/config")).body.backfill as BackfillJson | null;
    const m = b?.metrics.find((x) => x.metric === "telegram_bytes_total");
    return m && m.waiting.length > 0 ? m : undefined;
  }, 60_000);
  assert.equal(waiting.state, "running");
  assert.match(waiting.waiting[0].reason, /the speed layer rolls them every 50s$/);
  await until("the added metric's backfill finished", async () => {
    const b = (await start.get("/api/v1/config")).body.backfill as BackfillJson;
    const m = b.metrics.find((x) => x.metric === "telegram_bytes_total");
    return m?.state === "finished" && m.waiting.length === 0 ? true : undefined;
  }, 120_000);
}

/** Every window of every metric as the test computed it, once the last ones are closed. */
async function assertExact(
  sql: postgres.Sql,
  topic: string,
  want: Map<string, number>,
): Promise<void> {
  await until("every partition past the last window", () => closed(sql, topic, want), 60_000);
  const got = new Map(
    (await sql`SELECT type, "timestamp", id, value FROM bytes`).map((r) => [
      `${r.type}|${(r.timestamp as Date).getTime()}|${r.id}`,
      Number(r.value),
    ]),
  );
  for (const metric of ["antenna_bytes_total", "messaging_bytes_total", "telegram_bytes_total"]) {
    const only = (m: Map<string, number>) => sorted(m).filter(([k]) => k.startsWith(`${metric}|`));
    assert.ok(only(want).length > 0, metric);
    assert.deepEqual(only(got), only(want), metric);
  }
}

Deno.test({
  name:
    "backfill CLI beside a running start: waits for the lake's roll, saying why, and exits 0 with the metric's rows exact; a live edit's backfill shows its wait in /api/v1/config",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const topic = await freshTopic("bfbeside", 2);
    const fresh = await freshDatabase("bfbeside");
    const dir = await Deno.makeTempDir({ prefix: "bfbeside_" });
    const file = `${dir}/pipeline.yaml`;
    const base = { topic, dbUrl: fresh.url, dir };
    await Deno.writeTextFile(file, config(base));

    // An hour of the past in the topic, to the minute before now.
    const startMs = Math.floor(Date.now() / HOUR) * HOUR - HOUR;
    const gen = createGenerator({ seed: 19, devices: 30, antennas: 4, startMs, rate: 1 });
    const pastCount = Math.floor((Date.now() - 60_000 - startMs) / 1000);
    const past = Array.from({ length: pastCount }, () => gen.next());
    await produce(topic, past.map((i) => ({ key: i.key, value: i.value })));

    const start = spawnStart(file, `${dir}/start.log`, PORT);
    const sql = postgres(fresh.url, { max: 1, onnotice: () => {} });
    const stored = async () =>
      Number(
        (await sql`SELECT COALESCE(sum(next_offset), 0)::bigint AS n FROM speed_progress
        WHERE topic = ${topic}`)[0].n,
      );
    let live: Awaited<ReturnType<typeof streamLive>> | undefined;
    try {
      await until(
        "the past consumed",
        async () => (await stored()) >= pastCount || undefined,
        90_000,
      );
      await until("the API", () => start.get("/api/v1/config").catch(() => undefined), 60_000);
      live = await streamLive(topic, {
        seed: 20,
        devices: 30,
        antennas: 4,
        perSecond: 20,
        maxLatenessMs: 2_000,
      });

      // The lake's open files hold the last rows: durable only at their roll.
      await backfillBesideStart(file);

      // A live edit adds a metric: its backfill waits for the lake as well, and says so.
      await Deno.writeTextFile(file, config({ ...base, extra: ADDED }));
      await editedBackfillWaits(start);

      const items = [...past, ...await live.stop()];
      await until(
        "every event stored",
        async () => (await stored()) >= items.length || undefined,
        60_000,
      );
      await assertExact(sql, topic, expected(items));
      const lines = await start.logLines();
      assert.ok(
        lines.some((l) =>
          l.msg === "backfill waits for the lake" && l.metric === "telegram_bytes_total"
        ),
      );
      assert.ok(
        lines.some((l) =>
          l.msg === "backfill of telegram_bytes_total finished: every partition is done"
        ),
      );
      assert.equal(await start.stop(), 0);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- start's log ---\n${start.tail()}`, {
        cause: e,
      });
    } finally {
      await live?.stop().catch(() => {});
      start.kill();
      await sql.end();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
