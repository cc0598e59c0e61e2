/**
 * `deno task bench:alerts [--events N] [--pairs N]`: what quota alerts cost
 * the speed layer and how fast they are, against the local stack. It
 * produces N (default 2,000,000) seeded events of 100,000 devices (one user
 * each, with user metadata: 2 % with quotas of a few KB, 3 % of tens of KB,
 * the others far above their usage) to a fresh 3-partition topic, then, each
 * in a fresh process, database and consumer group:
 * (a) the speed layer alone, and (b) the speed layer with quota alerts (the
 *     detector in every flush, the outbox dispatcher publishing to Kafka),
 *     until every offset is stored and committed; `--pairs` times each,
 *     alternating, so both see the same machine;
 * (c) in the last (b) run, once the catch-up's alerts are folded and
 *     delivered, a live tail at 2,000 events/s in real event time (the
 *     current hour: the few-KB users cross within it): for every alert raised
 *     in the tail, the delay
 *     from consuming its crossing event to the alert being durable (the
 *     commit that made it so) and to its message being read back from the
 *     alert topic (p50, p99).
 * Prints a Markdown table and, for a full run of fresh events, writes it to
 * BENCHMARKS.md ("## Quota alerts").
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import { Kafka, logLevel } from "kafkajs";
import { planFromYaml } from "../src/config/mod.ts";
import { migrate, openDb } from "../src/db/mod.ts";
import { createKafkaSource, createProducer, ensureTopics } from "../src/kafka/mod.ts";
import { openStore } from "../src/lake/mod.ts";
import { createGenerator, createRandom, deviceId } from "../src/simulator/mod.ts";
import { startSpeedLayer } from "../src/speed/mod.ts";
import { startQuotaAlerts } from "../src/alerts/mod.ts";
import { stackUp } from "../src/stack/mod.ts";
import { createLogger } from "../src/log.ts";
import {
  markdownTable,
  mb,
  percentile,
  produceInOrder,
  sampleRss,
  startV8Flags,
  writeSection,
} from "./_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    events: { type: "string", default: "2000000" },
    pairs: { type: "string", default: "2" },
    topic: { type: "string" },
    "tail-s": { type: "string", default: "60" },
    // Internal: one measured run in a fresh process, JSON on stdout.
    "layer-topic": { type: "string" },
    mode: { type: "string" },
    tail: { type: "boolean", default: false },
  },
});
const N = Number(values.events);
const DEVICES = 100_000;
const USERS = DEVICES;
const PARTITIONS = 3;
const HOUR = 3_600_000;
const EVENT_RATE = 200; // items per second of event time, as bench:speed
const TAIL_RATE = 2_000; // events per wall second in the live tail
const out = (s: string) => console.log(s);
const quiet = createLogger({ bench: "alerts" });

const stack = await stackUp();
const brokers = stack.kafkaBrokers.split(",");

/**
 * A user's hourly quota (users average ~34 KB an hour while catching up, ~6
 * KB a minute in the live tail): 2 % of 2-5 KB (they cross in the tail and in
 * every hour), 3 % of 15-45 KB (some hours), the others 1 GB (never).
 */
function quotas(): number[] {
  const rng = createRandom(99);
  return Array.from({ length: USERS }, (_, u) => {
    const r = rng.next();
    return u % 50 === 0
      ? 2_000 + Math.floor(3_000 * r)
      : u % 50 < 4
      ? 15_000 + Math.floor(30_000 * r)
      : 1_000_000_000;
  });
}

if (values["layer-topic"]) {
  console.log(JSON.stringify(await measuredRun(values["layer-topic"], values.mode === "on")));
  Deno.exit(0);
}

const run = crypto.randomUUID().slice(0, 8);
const startMs = values.topic
  ? Number(values.topic.split("-").at(-1))
  : Math.floor(Date.now() / HOUR) * HOUR - 8 * HOUR;
const topic = values.topic ?? `bench-alerts-${run}-${startMs}`;
await ensureTopics({ brokers, topics: [{ topic, partitions: PARTITIONS }] });
const t0 = performance.now();
if (!values.topic) await produceBacklog();
const produceS = (performance.now() - t0) / 1000;
out(
  values.topic
    ? `reusing ${topic}`
    : `produced ${N} events to ${topic} in ${produceS.toFixed(1)} s`,
);

interface RunResult {
  /** CPU seconds of this process and of PostgreSQL's backends for its database, catching up. */
  cpu: { deno: number; pg: number };
  rate: number;
  seconds: number;
  peakRss: number;
  alerts: number;
  delivered: number;
  flushes: number;
  /**
   * Alerts on: from the start until the catch-up's shares are all folded and
   * its alerts delivered, with the CPU until then. Folds are paced while
   * catching up, so part of their work comes after the last offset; it is
   * started at once here (settle()), so this is work, not the pace's wait.
   */
  settled?: { seconds: number; cpu: { deno: number; pg: number } };
  tail?: { alerts: number; durable: number[]; topic: number[] };
}
const pairs = Number(values.pairs);
const results: { off: RunResult[]; on: RunResult[] } = { off: [], on: [] };
for (let i = 0; i < pairs; i++) {
  for (const mode of ["off", "on"] as const) {
    const last = mode === "on" && i === pairs - 1;
    const r = await child(mode, last && Number(values["tail-s"]) > 0);
    results[mode].push(r);
    out(
      `alerts ${mode}: ${r.rate.toFixed(0)} events/s (${r.seconds.toFixed(1)} s), CPU ${
        (r.cpu.deno * 1e6 / N).toFixed(1)
      } µs/event Deno + ${(r.cpu.pg * 1e6 / N).toFixed(1)} µs/event PostgreSQL, peak RSS ${
        mb(r.peakRss)
      } MB, ${r.alerts} alerts, ${r.delivered} on the topic, ${r.flushes} flushes${
        r.settled
          ? `; every alert durable and delivered after ${r.settled.seconds.toFixed(1)} s (${
            (N / r.settled.seconds).toFixed(0)
          } events/s), CPU ${(r.settled.cpu.deno * 1e6 / N).toFixed(1)} + ${
            (r.settled.cpu.pg * 1e6 / N).toFixed(1)
          } µs/event`
          : ""
      }`,
    );
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const offRate = mean(results.off.map((r) => r.rate));
const onRate = mean(results.on.map((r) => r.rate));
const share = (onRate / offRate) * 100;
const settledRate = mean(results.on.map((r) => N / r.settled!.seconds));
const settledShare = (settledRate / offRate) * 100;
const cpuPerEvent = (rs: RunResult[], of: (r: RunResult) => RunResult["cpu"]) =>
  mean(rs.map((r) => (of(r).deno + of(r).pg) * 1e6 / N));
const tail = results.on.at(-1)!.tail;
const p = (xs: number[] | undefined, q: number) => (xs && xs.length ? percentile(xs, q) : NaN);
const dur50 = p(tail?.durable, 50), dur99 = p(tail?.durable, 99);
const top50 = p(tail?.topic, 50), top99 = p(tail?.topic, 99);
const ok = (b: boolean) => (b ? "yes" : "**no**");
const runs = (rs: RunResult[]) => rs.map((r) => r.rate.toFixed(0)).join(", ");
const table = markdownTable(["Measure", "Result", "Target", "Met"], [
  [
    `Events (${DEVICES.toLocaleString("en")} devices, ${
      USERS.toLocaleString("en")
    } users, ${PARTITIONS} partitions)`,
    N.toLocaleString("en"),
    "",
    "",
  ],
  [
    "Speed layer, alerts off (each run)",
    `${offRate.toFixed(0)} events/s (${runs(results.off)})`,
    "",
    "",
  ],
  [
    "Speed layer, alerts on (each run)",
    `${onRate.toFixed(0)} events/s (${runs(results.on)})`,
    "",
    "",
  ],
  ["Alerts on / off", `${share.toFixed(0)} %`, "≥ 85 %", ok(share >= 85)],
  [
    "Alerts on, until every alert of the catch-up is durable and delivered (each run)",
    `${settledRate.toFixed(0)} events/s (${
      results.on.map((r) => (N / r.settled!.seconds).toFixed(0)).join(", ")
    }), ${settledShare.toFixed(0)} % of off`,
    "",
    "",
  ],
  [
    "CPU per event, Deno + PostgreSQL: off / on caught up / on all alerts done",
    `${cpuPerEvent(results.off, (r) => r.cpu).toFixed(1)} / ${
      cpuPerEvent(results.on, (r) => r.cpu).toFixed(1)
    } / ${cpuPerEvent(results.on, (r) => r.settled!.cpu).toFixed(1)} µs`,
    "",
    "",
  ],
  [
    "Alerts raised while catching up (last run)",
    `${results.on.at(-1)!.alerts.toLocaleString("en")}`,
    "",
    "",
  ],
  [
    `Detection delay, consumed → durable, p50 / p99 (${tail?.alerts ?? 0} alerts, live tail)`,
    `${dur50.toFixed(0)} / ${dur99.toFixed(0)} ms`,
    "p99 < 2 s",
    ok(dur99 < 2_000),
  ],
  [
    "Detection delay, consumed → read back from the alert topic, p50 / p99",
    `${top50.toFixed(0)} / ${top99.toFixed(0)} ms`,
    "p99 < 2 s",
    ok(top99 < 2_000),
  ],
  [
    "Peak RSS, alerts off / on",
    `${mb(Math.max(...results.off.map((r) => r.peakRss)))} / ${
      mb(Math.max(...results.on.map((r) => r.peakRss)))
    } MB`,
    "",
    "",
  ],
]);
out("\n" + table);
if (values.topic || N < 2_000_000) Deno.exit(0);
await writeSection(
  new URL("../BENCHMARKS.md", import.meta.url).pathname,
  "Quota alerts",
  `Command: \`./deno task bench:alerts\` (\`--events N\`, \`--pairs N\`), local stack (Kafka 4.1
KRaft, PostgreSQL 15) on this 2-core machine, run ${new Date().toISOString().slice(0, 16)}Z.
Workload: the events of \`bench:speed\` (200 events per second of event time, 2 % late, 0.1 %
malformed, 100,000 devices) with user metadata for every device: 100,000 users of one device each
(averaging ~34 KB an hour), 2 % with hourly quotas of 2-5 KB, 3 % of 15-45 KB, the others 1 GB;
thresholds 80 % and 100 %. Each run is a fresh process (the
\`start\` task's V8 flags), database and consumer group, the speed layer with its default settings
until every offset is stored and committed; with alerts on, the detector rides every flush and the
outbox publishes every alert to a Kafka topic meanwhile. (Cross-partition sums of users with
several devices are covered by the tests, not here: the issue fixes 100,000 users, and bench:speed's
100,000 devices keep both figures comparable.) Runs alternate off, on, off, on, … so both
see the same machine; the ratio is of the means. While the speed layer is behind, the fold
that decides the alerts runs at most once a minute (fold.ts, nextFold), so a catch-up's alerts are
decided after its last offset: the row "until every
alert of the catch-up is durable and delivered" times the same runs to the end of that work (the
pending fold started at once, not after the pace's wait), and the CPU row compares the work per
event. Detection delay: in the last run, after catching
up and once its alerts are folded and delivered, a live tail at ${
    TAIL_RATE.toLocaleString("en")
  } events/s in real event time (the current
hour); for every alert of the tail, from consuming its crossing event (the detector's timestamp,
stored as \`consumed_at\`) to the commit that made it durable, and to its message being read back
from the alert topic by a consumer in the same process.

${table}
`,
);
Deno.exit(0);

// ---------------------------------------------------------------------------------------

async function produceBacklog(): Promise<void> {
  const gen = createGenerator({
    seed: 2026,
    devices: DEVICES,
    antennas: 500,
    startMs,
    rate: EVENT_RATE,
    lateShare: 0.02,
    maxLatenessMs: 20_000,
    malformedShare: 0.001,
  });
  await produceInOrder({
    brokers,
    topic,
    partitions: PARTITIONS,
    count: N,
    gen,
    clientId: "bench-alerts-producer",
  });
}

async function child(mode: "off" | "on", tail: boolean): Promise<RunResult> {
  const res = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      ...startV8Flags(),
      new URL(import.meta.url).pathname,
      "--layer-topic",
      topic,
      "--events",
      String(N),
      "--mode",
      mode,
      "--tail-s",
      values["tail-s"]!,
      ...(tail ? ["--tail"] : []),
    ],
    env: { LOG_LEVEL: Deno.env.get("LOG_LEVEL") ?? "warn" },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!res.success) throw new Error(`the ${mode} run failed`);
  return JSON.parse(new TextDecoder().decode(res.stdout).trim().split("\n").pop()!);
}

/** One run in this (fresh) process: catch up on the topic, then maybe the live tail. */
async function measuredRun(topic: string, alertsOn: boolean): Promise<RunResult> {
  const id = crypto.randomUUID().slice(0, 8);
  const admin = postgres(stack.pgUrl, { max: 1, onnotice: () => {} });
  const dbName = `bench_alerts_${id}`;
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(stack.pgUrl);
  dbUrl.pathname = `/${dbName}`;
  const lakeDir = await Deno.makeTempDir({ prefix: "bench_alerts_lake_" });
  const alertTopic = `${topic}-alerts-${id}`;
  const plan = planFromYaml(
    `
source:
  kind: kafka
  kafka: { brokers: ${
      brokers.join(",")
    }, topic: ${topic}, group: ${topic}-${id}, from_beginning: true }
speed:
  window: 5m
  allowed_lateness: 15s
  idle_timeout: 30s
  flush_interval: 1s
  quota_alerts:
    enabled: ${alertsOn}
    thresholds: [${Deno.env.get("BENCH_THRESHOLDS") ?? "0.8, 1"}]
    outputs: { kafka: { topic: ${alertTopic} } }
lake:
  uri: file://${lakeDir}
  roll: { max_age: 1s }
  compaction: { enabled: true, after: 5m }
database: { url: "${dbUrl}" }
`,
    { env: {} },
  );
  const db = await openDb({ url: plan.database.url });
  await migrate(db);
  const q = quotas();
  await db.query(
    `INSERT INTO user_metadata (id, name, email, quota)
     SELECT u.id, u.email, u.email, u.quota
     FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, email, quota)`,
    [
      Array.from({ length: DEVICES }, (_, d) => deviceId(d)),
      Array.from({ length: DEVICES }, (_, d) => `user${d % USERS}@example.com`),
      Array.from({ length: DEVICES }, (_, d) => q[d % USERS]),
    ],
  );
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
  const ka = kafka.admin();
  await ka.connect();
  const endsOf = async () =>
    new Map((await ka.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]));
  const ends = await endsOf();

  // Experiments (not part of the record): BENCH_ALERT_OUTPUTS=none, BENCH_THRESHOLDS=50.
  const noOutputs = Deno.env.get("BENCH_ALERT_OUTPUTS") === "none";
  const alerts = alertsOn
    ? await startQuotaAlerts({ plan, db, log: quiet, outputs: noOutputs ? [] : undefined })
    : undefined;
  const durableAt = new Map<number, number>();
  let unsubscribe: (() => void) | undefined;
  const rss = sampleRss();
  const cpu0 = { deno: cpuSeconds("self"), pg: pgCpuSeconds(dbName) };
  const t = performance.now();
  const layer = await startSpeedLayer({
    plan,
    db,
    store: openStore(plan.lake),
    source: createKafkaSource({
      brokers,
      clientId: "bench-alerts",
      topic,
      group: plan.source.kafka.group,
      fromBeginning: true,
    }),
    log: quiet,
    participants: alerts ? [alerts.participant] : undefined,
  });
  const caughtUp = (e: Map<number, number>) =>
    new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        const parts = layer.status().partitions;
        if (
          [...e].every(([p, end]) =>
            parts.some((s) =>
              s.partition === p && s.storedOffset >= end && s.committedOffset >= end
            )
          )
        ) {
          clearInterval(timer);
          resolve();
        }
      }, 50);
    });
  await caughtUp(ends);
  const seconds = (performance.now() - t) / 1000;
  const cpu = {
    deno: cpuSeconds("self") - cpu0.deno,
    pg: pgCpuSeconds(dbName) - cpu0.pg,
  };
  const peakRss = rss.peak();
  const count = async (sql: string) => Number((await db.query<{ n: number }>(sql))[0].n);
  const raised = alertsOn ? await count("SELECT count(*) AS n FROM quota_alerts") : 0;
  const delivered = alertsOn
    ? await count("SELECT count(*) AS n FROM quota_alert_deliveries WHERE state = 'delivered'")
    : 0;
  const result: RunResult = {
    cpu,
    rate: N / seconds,
    seconds,
    peakRss,
    alerts: raised,
    delivered,
    flushes: layer.status().counters.flushes,
  };

  if (alerts) {
    const settled = async () => {
      const r = await db.query<{ s: number; d: number }>(
        `SELECT (SELECT count(*) FROM quota_usage_shares) AS s,
           (SELECT count(*) FROM quota_alert_deliveries WHERE state = 'pending') AS d`,
      );
      return Number(r[0].s) === 0 && Number(r[0].d) === 0;
    };
    // The work the pacing left for later, done now (not after the pace's wait).
    await alerts.settle();
    for (let i = 0; i < 1_500 && !(await settled()); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    result.settled = {
      seconds: (performance.now() - t) / 1000,
      cpu: { deno: cpuSeconds("self") - cpu0.deno, pg: pgCpuSeconds(dbName) - cpu0.pg },
    };
  }

  if (alerts && values.tail) {
    // Normal rate: what the catch-up raised is folded and delivered before the tail starts.
    // Commits of alerts reach the feed at once (a listener only from here: while catching
    // up nobody listens, as in production the stream is read by a few dashboards).
    unsubscribe = alerts.feed.subscribe((a) => durableAt.set(a.id, Date.now()));
    // Read the alert topic back, recording when each alert arrives.
    const arrived = new Map<number, number>();
    const consumer = kafka.consumer({ groupId: `${alertTopic}-reader`, maxWaitTimeInMs: 50 });
    await consumer.connect();
    await consumer.subscribe({ topic: alertTopic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        const idOf = JSON.parse(message.value!.toString()).id as number;
        if (!arrived.has(idOf)) arrived.set(idOf, Date.now());
        return Promise.resolve();
      },
    });
    const tailS = Number(values["tail-s"]);
    const gen = createGenerator({ seed: 7, devices: DEVICES, antennas: 500 }); // event time = now
    const producer = await createProducer({ brokers, clientId: "bench-alerts-tail" });
    const tailStart = Date.now();
    let sent = 0;
    while (Date.now() - tailStart < tailS * 1000) {
      const due = Math.floor(((Date.now() - tailStart) / 1000) * TAIL_RATE) - sent;
      if (due > 0) {
        const msgs = [];
        for (let i = 0; i < due; i++) {
          const it = gen.next();
          msgs.push({ key: it.key, value: it.value });
        }
        await producer.send(topic, msgs);
        sent += due;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    await producer.close();
    await caughtUp(await endsOf());
    await new Promise((r) => setTimeout(r, 5_000)); // the last deliveries
    await consumer.disconnect();
    const rows = await db.query<{ id: number; consumed_at: Date }>(
      `SELECT id, consumed_at FROM quota_alerts WHERE source = 'speed' AND consumed_at >= $1`,
      [new Date(tailStart)],
    );
    const durable: number[] = [], onTopic: number[] = [];
    for (const r of rows) {
      const c = r.consumed_at.getTime();
      const d = durableAt.get(Number(r.id));
      const a = arrived.get(Number(r.id));
      if (d !== undefined) durable.push(d - c);
      if (a !== undefined) onTopic.push(a - c);
    }
    result.tail = { alerts: rows.length, durable, topic: onTopic };
  }
  unsubscribe?.();
  result.peakRss = Math.max(result.peakRss, rss.stop());
  await layer.stop();
  await alerts?.stop();
  await ka.disconnect();
  await db.close();
  await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
  await Deno.remove(lakeDir, { recursive: true });
  return result;
}

/** utime + stime of a process, seconds (Linux /proc; clock ticks of 100 Hz). */
function cpuSeconds(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

/** CPU seconds of the PostgreSQL backends connected to `db` (their process titles name it). */
function pgCpuSeconds(db: string): number {
  let total = 0;
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmd.startsWith("postgres:") && cmd.includes(` ${db} `)) {
        total += cpuSeconds(Number(e.name));
      }
    } catch { /* gone */ }
  }
  return total;
}
