/**
 * `deno task bench:api`: the serving API under load on loopback. A fresh
 * database on the local stack's PostgreSQL is filled, inside PostgreSQL
 * (INSERT … SELECT generate_series), with DAYS days of 5-minute speed windows
 * for 1,000 ids of each of 3 metrics (speed_partials, visible through the
 * `bytes` view), the hourly batch rows of 2 of them, and batch_hours for all
 * but the last day, so merged hourly series mix batch and speed. Then the app
 * is served with Deno.serve and hit by CONCURRENCY clients for SECONDS per
 * scenario: one-day series of a random id (5m and 1h, merged), and `GET
 * /health` as the baseline of the HTTP stack alone. Figures go to
 * BENCHMARKS.md under "## Serving API".
 *
 * Flags: --days N (default 30), --seconds N (default 20), --concurrency N (16),
 * --keep (leave the database for EXPLAIN).
 */
import postgres from "postgres";
import { parseArgs } from "node:util";
import { stackUp } from "../src/stack/mod.ts";
import { type Db, migrate, openDb } from "../src/db/mod.ts";
import { createApp } from "../src/api/mod.ts";
import { apiTestPlan } from "../tests/_support/api.ts";
import { Registry } from "../src/metrics.ts";
import { createLogger } from "../src/log.ts";
import { markdownTable, percentile, writeSection } from "./_util.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    days: { type: "string", default: "30" },
    seconds: { type: "string", default: "20" },
    concurrency: { type: "string", default: "16" },
    /** Keep the database (for EXPLAIN); its name is printed. */
    keep: { type: "boolean", default: false },
  },
});
const DAYS = Number(flags.days);
const SECONDS = Number(flags.seconds);
const CONCURRENCY = Number(flags.concurrency);
const IDS = 1000;
const METRICS = ["antenna_bytes_total", "user_bytes_total", "app_bytes_total"];
/** Metrics the batch layer also computes (bytes_hourly rows, merged views switch). */
const BATCH_METRICS = ["antenna_bytes_total", "app_bytes_total"];
const DAY = 86_400_000;
/** The data ends here; "now" for the app. */
const END = Date.UTC(2026, 11, 1);
const START = END - DAYS * DAY;
const COMMAND = `./deno task bench:api${Deno.args.length ? " " + Deno.args.join(" ") : ""}`;

/** Why speed_partials has the indexes it has; figures from a writeFlush micro-benchmark. */
const INDEX_NOTE =
  `- Indexes: since \`sql/006_speed_partials_brin.sql\`, \`speed_partials\` has its key
  (type, id, timestamp, partition) and one BRIN index on (timestamp, hour) instead of the B-trees
  (type, timestamp) and (type, id, hour), for the speed layer's write rate: writeFlush of 810,000
  new rows (3 partitions at once, 7,500 rows per flush) went from ~99k to ~181k rows/s (key alone
  ~190k), upserts from ~82k to ~117k rows/s. The API's hourly series selects the speed windows by
  their raw timestamp (one range of the key) instead of by the hour expression.`;

const idOf = (i: number) => `id-${String(i).padStart(4, "0")}`;

async function timed<T>(label: string, fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const r = await fn();
  const s = (performance.now() - t0) / 1000;
  console.log(`${label}: ${s.toFixed(1)} s`);
  return [r, s];
}

async function load(db: Db): Promise<{ speedRows: number; hourlyRows: number; seconds: number }> {
  const start = new Date(START);
  const end = new Date(END);
  await db.query(
    `INSERT INTO speed_metrics (type, aggregation, window_ms)
     SELECT t, 'sum', 300000 FROM unnest($1::text[]) AS t ON CONFLICT (type) DO NOTHING`,
    [METRICS],
  );
  await db.query(
    `INSERT INTO metric_catalog (type, layer, aggregation)
     SELECT t, 'batch', 'sum' FROM unnest($1::text[]) AS t ON CONFLICT DO NOTHING`,
    [BATCH_METRICS],
  );
  await db.query(
    `INSERT INTO speed_progress (topic, "partition", next_offset, lake_offset, clock_ms, watermark)
     VALUES ('devices', 0, 0, 0, $1::bigint, $2::timestamp)`,
    [END, end],
  );
  // Bulk load in primary-key order. The BRIN index (sql/006) costs nothing on
  // pages appended after its last summarized range; they are summarized once
  // at the end, as autovacuum does after the speed layer's writes.
  const t0 = performance.now();
  for (const type of METRICS) {
    await timed(`speed_partials ${type}`, () =>
      db.query(
        `INSERT INTO speed_partials (type, "timestamp", id, "partition", value, window_end)
         SELECT $1::text, ts, 'id-' || lpad(i::text, 4, '0'), 0,
           1000 + ((i * 7919 + extract(epoch FROM ts)::bigint / 300) % 10000),
           ts + interval '5 minutes'
         FROM generate_series(0, $4::int - 1) AS i,
           generate_series($2::timestamp, $3::timestamp - interval '5 minutes',
             interval '5 minutes') AS ts
         ORDER BY i, ts`,
        [type, start, end, IDS],
      ));
  }
  await timed(
    "speed_partials BRIN summary",
    () => db.query("SELECT brin_summarize_new_values('speed_partials_time_brin')"),
  );
  for (const type of BATCH_METRICS) {
    await timed(`bytes_hourly ${type}`, () =>
      db.query(
        `INSERT INTO bytes_hourly (timestamp, id, value, type)
         SELECT ts, 'id-' || lpad(i::text, 4, '0'), 72000 + i, $1::text
         FROM generate_series($2::timestamp, $3::timestamp - interval '1 hour',
           interval '1 hour') AS ts,
           generate_series(0, $4::int - 1) AS i`,
        [type, start, end, IDS],
      ));
  }
  // Every hour but the last day's is batched: the newest day stays speed.
  await db.query(
    `INSERT INTO batch_hours (hour, last_run_id)
     SELECT h, 0 FROM generate_series($1::timestamp, $2::timestamp - interval '1 day' - interval '1 hour',
       interval '1 hour') AS h`,
    [start, end],
  );
  await timed("ANALYZE", () => db.exec("ANALYZE"));
  const seconds = (performance.now() - t0) / 1000;
  const [{ n }] = await db.query<{ n: number }>("SELECT count(*)::bigint AS n FROM speed_partials");
  const [{ h }] = await db.query<{ h: number }>("SELECT count(*)::bigint AS h FROM bytes_hourly");
  return { speedRows: Number(n), hourlyRows: Number(h), seconds };
}

interface Result {
  name: string;
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
}

/** CONCURRENCY clients, each sending its next request as soon as the last one answered. */
async function run(name: string, base: string, nextPath: () => string): Promise<Result> {
  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + SECONDS * 1000;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (performance.now() < deadline) {
      const t = performance.now();
      const res = await fetch(base + nextPath());
      await res.arrayBuffer();
      latencies.push(performance.now() - t);
      if (res.status !== 200) errors++;
    }
  }));
  const s = (performance.now() - t0) / 1000;
  const r = {
    name,
    requests: latencies.length,
    errors,
    rps: latencies.length / s,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: percentile(latencies, 100),
  };
  console.log(
    `${name}: ${r.requests} requests, ${r.rps.toFixed(0)}/s, p50 ${r.p50.toFixed(1)} ms, ` +
      `p99 ${r.p99.toFixed(1)} ms, errors ${errors}`,
  );
  return r;
}

async function main() {
  const info = await stackUp(["postgres"]);
  const dbName = `bench_api_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(info.pgUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  const url = new URL(info.pgUrl);
  url.pathname = "/" + dbName;
  const db = await openDb({ url: url.toString(), maxConnections: 10 });
  const lakeDir = await Deno.makeTempDir({ prefix: "bench_api_lake_" });
  try {
    await migrate(db);
    const loaded = await load(db);
    console.log(
      `loaded ${loaded.speedRows} speed rows and ${loaded.hourlyRows} hourly rows in ${
        loaded.seconds.toFixed(1)
      } s`,
    );
    const plan = apiTestPlan({ lakeUri: `file://${lakeDir}` });
    const app = createApp({
      plan,
      db,
      registry: new Registry(),
      clock: () => END,
      log: createLogger({ component: "bench-api" }),
    });
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const rand = (n: number) => Math.floor(Math.random() * n);
    const oneDay = (granularity: string) => () => {
      const day = START + rand(DAYS) * DAY;
      return `/api/v1/metrics/${METRICS[rand(METRICS.length)]}/series?id=${idOf(rand(IDS))}` +
        `&granularity=${granularity}&from=${new Date(day).toISOString()}` +
        `&to=${new Date(day + DAY).toISOString()}`;
    };
    // Warm-up (connections, plans, JIT), not measured.
    for (let i = 0; i < 50; i++) await (await fetch(base + oneDay("5m")())).arrayBuffer();
    const results = [
      await run("GET /health (baseline)", base, () => "/health"),
      await run("one-day series, 5m, merged (288 points)", base, oneDay("5m")),
      await run("one-day series, 1h, merged (24 points)", base, oneDay("1h")),
    ];
    await server.shutdown();

    const ms = (v: number) => v.toFixed(1);
    const body = `Command: \`${COMMAND}\` (PostgreSQL of the local stack, app and load client in one
Deno process on loopback; ${new Date().toISOString().slice(0, 10)}, 2 cores shared with other work).

- Data: ${DAYS} days of 5-minute windows for ${IDS} ids × ${METRICS.length} metrics = ` +
      `${
        loaded.speedRows.toLocaleString("en-US")
      } rows in \`speed_partials\` (one Kafka partition, ` +
      `read through the \`bytes\` view), plus ${
        loaded.hourlyRows.toLocaleString("en-US")
      } rows in ` +
      `\`bytes_hourly\` for ${BATCH_METRICS.length} metrics; every hour but the last day is in ` +
      `\`batch_hours\`. Loaded with INSERT … SELECT generate_series in ${
        loaded.seconds.toFixed(0)
      } s, in key order (BRIN index summarized after the load).
${INDEX_NOTE}
- Load: ${CONCURRENCY} concurrent clients for ${SECONDS} s per scenario; each series request picks a
  random metric, id and day of the ${DAYS}.

${
        markdownTable(
          ["Scenario", "Requests", "Errors", "Requests/s", "p50 ms", "p99 ms", "max ms"],
          results.map((r) => [
            r.name,
            String(r.requests),
            String(r.errors),
            r.rps.toFixed(0),
            ms(r.p50),
            ms(r.p99),
            ms(r.max),
          ]),
        )
      }

- Target: p99 < 50 ms for a one-day series of one id: ${
        results.slice(1).map((r) =>
          `${r.p99 < 50 ? "met" : "NOT met"} for the ${r.name.split(",")[1].trim()} series (${
            ms(r.p99)
          } ms)`
        ).join(", ")
      }.
- Machine load average after the run: ${Deno.loadavg().map((v) => v.toFixed(1)).join(" / ")}.`;
    await writeSection("BENCHMARKS.md", "Serving API", body);
    console.log("\n" + body);
  } finally {
    await db.close();
    if (flags.keep) console.log(`kept database ${url}`);
    else await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    await Deno.remove(lakeDir, { recursive: true });
  }
}

if (import.meta.main) await main();
