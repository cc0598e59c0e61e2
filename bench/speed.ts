/**
 * `deno task bench:speed [--events N]`: the speed layer's throughput on this
 * machine, against the local stack (`deno task stack up`). It produces N
 * (default 2,000,000) seeded events of 100,000 devices to a fresh 3-partition
 * topic, then measures on that topic, in this order and in this process:
 * (a) kafkajs consume-only through createKafkaSource (the layer's own client),
 * (b) @platformatic/kafka consume-only, for the record,
 * (c) the whole speed layer (Kafka → windows → PostgreSQL + local lake) until
 *     every offset is stored and committed, with peak RSS,
 * (d) a live tail at 2,000 events/s whose event time runs 100x faster, so a
 *     5-minute window closes every 3 s: the delay from producing the first
 *     event past a window's end + lateness to that window's rows being
 *     visible in `bytes` (p50, p99).
 * Prints a Markdown table and, for a run of at least 2,000,000 fresh events,
 * writes it to BENCHMARKS.md ("## Speed layer"). Quick iterations:
 * `--events 500000` once, then `--topic <printed topic> --events 500000` to
 * reuse its events; `--layer-flags=--v8-flags=--prof` profiles phase (c).
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import { Consumer } from "@platformatic/kafka";
import { delay } from "../src/async/delay.ts";
import { planFromYaml } from "../src/config/mod.ts";
import { migrate, openDb } from "../src/db/mod.ts";
import { createKafkaSource, createProducer, ensureTopics } from "../src/kafka/mod.ts";
import { openStore } from "../src/lake/mod.ts";
import { createGenerator } from "../src/simulator/mod.ts";
import { startSpeedLayer } from "../src/speed/mod.ts";
import { stackUp } from "../src/stack/mod.ts";
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
    // Reuse a topic produced by an earlier run (with this --events count): skips producing.
    topic: { type: "string" },
    // Skips phase (d), which adds its events to the topic (keeps a topic reusable).
    "no-tail": { type: "boolean", default: false },
    // Extra Deno flags for the speed layer's process, e.g. --v8-flags=--prof (profiling).
    "layer-flags": { type: "string", default: "" },
    // Internal: run phases (c) and (d) on this topic in a fresh process, print JSON.
    "layer-topic": { type: "string" },
    "last-event-ms": { type: "string" },
    // Items per second of event time (see below).
    "event-rate": { type: "string", default: "200" },
  },
});
const N = Number(values.events);
const DEVICES = 100_000;
const PARTITIONS = 3;
const WINDOW_MS = 300_000;
const LATENESS_MS = 15_000;
const HOUR = 3_600_000;
const out = (s: string) => console.log(s);

const stack = await stackUp();
const brokers = stack.kafkaBrokers.split(",");
const pgAdmin = stack.pgUrl;
const run = crypto.randomUUID().slice(0, 8);
// Event time starts 8 h before the hour of the run; the topic's name carries it,
// so a reused topic (--topic) gives the same windows.
const startMs = values.topic
  ? Number(values.topic.split("-").at(-1))
  : Math.floor(Date.now() / HOUR) * HOUR - 8 * HOUR;
const topic = values.topic ?? `bench-speed-${run}-${startMs}`;
if (values["layer-topic"]) {
  console.log(
    JSON.stringify(await layerPhases(values["layer-topic"], Number(values["last-event-ms"]))),
  );
  Deno.exit(0);
}
await ensureTopics({ brokers, topics: [{ topic, partitions: PARTITIONS }] });

// ---- produce ------------------------------------------------------------------
const EVENT_RATE = Number(values["event-rate"]); // 200: 2 M items ≈ 2.8 h, 33 windows
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
const t = performance.now();
if (!values.topic) {
  await produceInOrder({
    brokers,
    topic,
    partitions: PARTITIONS,
    count: N,
    gen,
    clientId: "bench-producer",
  });
}
const produceS = (performance.now() - t) / 1000;
out(
  values.topic
    ? `reusing ${topic}`
    : `produced ${N} events to ${topic} in ${produceS.toFixed(1)} s`,
);
const lastEventMs = startMs + Math.floor(((N - 1) * 1000) / EVENT_RATE);

// ---- (a) kafkajs consume-only -------------------------------------------------
async function kafkajsConsumeOnly(): Promise<number> {
  const source = createKafkaSource({
    brokers,
    clientId: "bench-kafkajs",
    topic,
    group: `${topic}-kafkajs-${run}`,
    fromBeginning: true,
  });
  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => done = r);
  const t0 = performance.now();
  await source.start({
    onBatch(b) {
      seen += b.messages.length;
      if (seen >= N) done();
      return Promise.resolve();
    },
    onAssign: () => Promise.resolve(),
    onRevoke: () => Promise.resolve(),
  });
  await finished;
  const s = (performance.now() - t0) / 1000;
  await source.stop();
  return N / s;
}

// ---- (b) @platformatic/kafka consume-only ---------------------------------------
async function platformaticConsumeOnly(): Promise<number> {
  const consumer = new Consumer({
    clientId: "bench-platformatic",
    bootstrapBrokers: brokers,
    groupId: `${topic}-platformatic-${run}`,
    maxBytes: 10 * 1024 * 1024,
  });
  const t0 = performance.now();
  const stream = await consumer.consume({ topics: [topic], mode: "earliest", autocommit: false });
  let seen = 0;
  await new Promise<void>((resolve, reject) => {
    stream.on("data", () => {
      if (++seen >= N) resolve();
    });
    stream.on("error", reject);
  });
  const s = (performance.now() - t0) / 1000;
  await stream.close();
  await consumer.close(true);
  return N / s;
}

const kafkajsRate = await kafkajsConsumeOnly();
out(`kafkajs consume-only: ${kafkajsRate.toFixed(0)} events/s`);
let platformaticRate = NaN;
try {
  platformaticRate = await platformaticConsumeOnly();
  out(`@platformatic/kafka consume-only: ${platformaticRate.toFixed(0)} events/s`);
} catch (e) {
  out(`@platformatic/kafka consume-only failed: ${(e as Error).message}`);
}

// ---- (c) + (d) in a fresh process, so its RSS is the layer's own ---------------------
const child = await new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    ...startV8Flags(),
    ...values["layer-flags"].split(" ").filter(Boolean),
    new URL(import.meta.url).pathname,
    "--layer-topic",
    topic,
    "--events",
    String(N),
    "--last-event-ms",
    String(lastEventMs),
    "--event-rate",
    String(EVENT_RATE),
    ...(values["no-tail"] ? ["--no-tail"] : []),
  ],
  stdout: "piped",
  stderr: "inherit",
}).output();
const res = JSON.parse(new TextDecoder().decode(child.stdout).trim().split("\n").pop()!);
const { layerRate, layerS, peakRss, rssBefore, peakAll, counters } = res;
// NaN (no tail) arrives as null.
const p50: number = res.p50 ?? NaN, p99: number = res.p99 ?? NaN;
const delays = { length: res.windows as number };
out(
  `speed layer: ${layerRate.toFixed(0)} events/s (${layerS.toFixed(1)} s), peak RSS ${
    mb(peakRss)
  } MB`,
);
out(`speed layer counters: ${JSON.stringify(counters)}`);
out(
  `at peak RSS: V8 heap used ${mb(res.atPeak.heapUsed)} MB of ${
    mb(res.atPeak.heapTotal)
  } MB, external ${mb(res.atPeak.external)} MB`,
);
out(
  `visibility delay over ${delays.length} windows: p50 ${p50.toFixed(0)} ms, p99 ${
    p99.toFixed(0)
  } ms`,
);

// ---- report ------------------------------------------------------------------------
const pct = (layerRate / kafkajsRate) * 100;
const ok = (b: boolean) => (b ? "yes" : "**no**");
const table = markdownTable(["Measure", "Result", "Target", "Met"], [
  [
    "Events produced (100,000 devices, 3 partitions)",
    N.toLocaleString("en"),
    "≥ 2,000,000",
    ok(N >= 2_000_000),
  ],
  ["kafkajs consume-only (createKafkaSource)", `${kafkajsRate.toFixed(0)} events/s`, "", ""],
  ["@platformatic/kafka consume-only", `${platformaticRate.toFixed(0)} events/s`, "", ""],
  [
    "Speed layer end to end (until all committed)",
    `${layerRate.toFixed(0)} events/s`,
    "≥ 50,000 events/s",
    ok(layerRate >= 50_000),
  ],
  ["Speed layer / kafkajs consume-only", `${pct.toFixed(0)} %`, "≥ 60 %", ok(pct >= 60)],
  [
    "Peak RSS during the speed layer run",
    `${mb(peakRss)} MB (${mb(rssBefore)} MB before)`,
    "< 400 MB",
    ok(peakRss < 400 * 1024 * 1024),
  ],
  ["Peak RSS incl. live tail", `${mb(peakAll)} MB`, "", ""],
  [
    `Visibility delay p50 / p99 (${delays.length} windows)`,
    `${p50.toFixed(0)} / ${p99.toFixed(0)} ms`,
    "p99 < 1 s",
    ok(p99 < 1_000),
  ],
]);
out("\n" + table);
// Only a full run of a fresh topic is the record.
if (values.topic || values["no-tail"] || N < 2_000_000) Deno.exit(0);
await writeSection(
  new URL("../BENCHMARKS.md", import.meta.url).pathname,
  "Speed layer",
  `Command: \`deno task bench:speed\` (\`--events N\` to change the count), local stack
(\`deno task stack up\`: Kafka 4.1 KRaft, PostgreSQL 15, on this 2-core machine).
Run ${new Date().toISOString().slice(0, 16)}Z, producing took ${produceS.toFixed(0)} s.
Workload: ${EVENT_RATE} events per second of event time (${
    Math.ceil((lastEventMs - startMs) / WINDOW_MS)
  } windows of 5 minutes), 2 % late, 0.1 % malformed; default speed settings (flush every 1 s,
25,000 dirty rows per partition), lake roll \`max_age: 1s\` (the last segment is cut by age, so
"until all committed" includes up to 1 s of it), hour compaction on (as in \`start\`: hours
complete every ~11 s of this run); the layer runs in its own process with the
\`start\` task's V8 flags (\`${startV8Flags().join(" ")}\`).
Visibility delay: from producing the first event past a window's end + 15 s lateness
(live tail, 2,000 events/s) to its rows being visible in \`bytes\` (polled every 20 ms).

${table}
`,
);
Deno.exit(0);

async function layerPhases(topic: string, lastEventMs: number) {
  const run = crypto.randomUUID().slice(0, 8);
  // (c) the whole speed layer ---------------------------------------------------
  const dbName = `bench_speed_${run}`;
  const admin = postgres(pgAdmin, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(pgAdmin);
  dbUrl.pathname = `/${dbName}`;
  const lakeDir = await Deno.makeTempDir({ prefix: "bench_speed_lake_" });
  const plan = planFromYaml(
    `
source:
  kind: kafka
  kafka: { brokers: ${
      brokers.join(",")
    }, topic: ${topic}, group: ${topic}-speed-${run}, from_beginning: true }
speed: { window: 5m, allowed_lateness: 15s, idle_timeout: 30s, flush_interval: 1s }
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
  const ends = new Map<number, number>();
  {
    const { Kafka, logLevel } = await import("kafkajs");
    const a = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
    await a.connect();
    for (const o of await a.fetchTopicOffsets(topic)) ends.set(o.partition, Number(o.high));
    await a.disconnect();
  }
  const rss = sampleRss();
  const rssBefore = Deno.memoryUsage().rss;
  // What the RSS is made of at its peak: V8 heap used, and buffers outside it.
  let atPeak = Deno.memoryUsage();
  const heapTimer = setInterval(() => {
    const m = Deno.memoryUsage();
    if (m.rss > atPeak.rss) atPeak = m;
  }, 100);
  const t = performance.now();
  const source = createKafkaSource({
    brokers,
    clientId: "bench-speed",
    topic,
    group: plan.source.kafka.group,
    fromBeginning: true,
  });
  const layer = await startSpeedLayer({ plan, db, store: openStore(plan.lake), source });
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const parts = layer.status().partitions;
      const ok = [...ends].every(([p, end]) =>
        parts.some((s) => s.partition === p && s.storedOffset >= end && s.committedOffset >= end)
      );
      if (ok) {
        clearInterval(timer);
        resolve();
      }
    }, 50);
  });
  const layerS = (performance.now() - t) / 1000;
  const layerRate = N / layerS;
  const peakRss = rss.peak();
  const counters = layer.status().counters;
  clearInterval(heapTimer);
  out(
    `speed layer: ${layerRate.toFixed(0)} events/s (${layerS.toFixed(1)} s), peak RSS ${
      mb(peakRss)
    } MB, ${JSON.stringify(counters)}`,
  );

  // ---- (d) visibility delay on a live tail --------------------------------------
  const teardown = async () => {
    await layer.stop();
    await db.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    await Deno.remove(lakeDir, { recursive: true });
  };
  if (values["no-tail"]) {
    await teardown();
    return {
      layerRate,
      layerS,
      peakRss,
      rssBefore,
      peakAll: rss.stop(),
      p50: NaN,
      p99: NaN,
      windows: 0,
      counters,
      atPeak,
    };
  }
  const TAIL_S = 40;
  const TAIL_RATE = 2_000; // events per wall second
  const TAIL_EVENT_RATE = 20; // events per event second → 100 event-s per wall second
  const tailStart = Math.floor(lastEventMs / WINDOW_MS) * WINDOW_MS + WINDOW_MS;
  const tail = createGenerator({
    seed: 7,
    devices: DEVICES,
    antennas: 500,
    startMs: tailStart,
    rate: TAIL_EVENT_RATE,
  });
  const crossing = new Map<number, number>(); // window start → wall time its end + lateness was produced
  const visible = new Map<number, number>();
  const producer = await createProducer({ brokers, clientId: "bench-tail" });
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const rows = await db.query<{ t: Date }>(
        `SELECT DISTINCT "timestamp" AS t FROM bytes WHERE type = 'app_bytes_total' AND "timestamp" >= $1`,
        [new Date(tailStart)],
      );
      const now = performance.now();
      for (const r of rows) if (!visible.has(r.t.getTime())) visible.set(r.t.getTime(), now);
      await delay(20);
    }
  })();
  const tailT0 = performance.now();
  let sent = 0;
  while (performance.now() - tailT0 < TAIL_S * 1000) {
    const due = Math.floor(((performance.now() - tailT0) / 1000) * TAIL_RATE) - sent;
    if (due > 0) {
      const msgs = [];
      let maxTs = -Infinity;
      for (let i = 0; i < due; i++) {
        const it = tail.next();
        msgs.push({ key: it.key, value: it.value });
        maxTs = Math.max(maxTs, it.event!.timestamp * 1000);
      }
      const at = performance.now();
      // Windows whose end + lateness this chunk reaches: the watermark passes them now.
      for (let w = tailStart; w + WINDOW_MS + LATENESS_MS <= maxTs; w += WINDOW_MS) {
        if (!crossing.has(w)) crossing.set(w, at);
      }
      await producer.send(topic, msgs);
      sent += due;
    }
    await delay(50);
  }
  await delay(3_000);
  polling = false;
  await poller;
  await producer.close();
  const delays: number[] = [];
  for (const [w, at] of crossing) {
    const v = visible.get(w);
    if (v !== undefined) delays.push(v - at);
  }
  const p50 = percentile(delays, 50);
  const p99 = percentile(delays, 99);
  out(
    `visibility delay over ${delays.length} windows: p50 ${p50.toFixed(0)} ms, p99 ${
      p99.toFixed(0)
    } ms`,
  );
  const peakAll = rss.stop();
  await teardown();
  return {
    layerRate,
    layerS,
    peakRss,
    rssBefore,
    peakAll,
    p50,
    p99,
    windows: delays.length,
    counters,
    atPeak,
  };
}
