/**
 * The golden test of `batch.engine: spark`: one lake hour (four Kafka
 * partitions, a replayed segment holding rows a second time under the same
 * (partition, offset), late events in a later segment, devices without user
 * metadata) and an empty hour, batched in process, by Spark `local[2]` and by
 * the standalone cluster of `deno task stack up spark`, the lake on local disk
 * and on the GCS emulator. `bytes_hourly`, `user_quota_limit`,
 * `batch_reconciliation` and the quota-alert verdicts must be identical across
 * engines and equal to totals computed here with plain loops over the events
 * written. The cluster run with a local lake loses an executor that has run
 * tasks (SIGKILL) and must still be exact. A script that fails on Spark, and
 * executors that keep dying, fail the run with Spark's reason and write
 * nothing.
 *
 * Each Spark run starts a JVM (tens of seconds on this machine; a cluster
 * run also starts an executor on each worker), so the matrix is lean: drop on
 * local[2] and on the cluster with a local lake, unknown_id on the cluster and
 * on local[2] with a gs:// lake (the latter as a Dataproc batch: the stand-in
 * of tests/_support/dataproc_standin.ts runs it on local Spark), fail on
 * local[2] with a local lake, a broken lake file on local[2], and executors
 * that cannot start on the cluster (a few seconds: no query runs): seven runs,
 * three of them on the cluster. Speed alerts lie in quota_alerts before each run, so the verdicts
 * (confirmed, unconfirmed, late) and quota_alert_reconciliation are compared
 * too.
 */
import assert from "node:assert/strict";
import { freshDatabase, gcsEndpoint, uniqueName } from "../_support/services.ts";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import {
  encodeColumns,
  type EventColumns,
  hourPath,
  type ObjectStore,
  openStore,
  pickRows,
  segmentFileName,
} from "../../src/lake/mod.ts";
import { createBatchRunner } from "../../src/batch/mod.ts";
import type { EngineOptions } from "../../src/batch/spark/mod.ts";
import { dataprocIds } from "../../src/batch/spark/dataproc.ts";
import { runBatchOnLocalSpark, startDataprocStandin } from "../_support/dataproc_standin.ts";
import { createConfirmation } from "../../src/alerts/confirm.ts";
import { generateHour, insertUsers, type TestUser, writeLakeHour } from "../_support/batch.ts";
import { deviceId } from "../../src/simulator/mod.ts";
import { type Plan, planFromYaml, type UnknownDevicePolicy } from "../../src/config/mod.ts";
import { createLogger } from "../../src/log.ts";
import { SPARK_MASTER_URL, stackUp } from "../../src/stack/mod.ts";
import { SHORT_JVM_OPTIONS, shortDriverJavaOptions } from "../../src/stack/spark.ts";
import { killAnExecutor } from "../_support/spark_executors.ts";

const H = Date.UTC(2026, 10, 28, 10);
const EMPTY = H + 3_600_000;
const UNKNOWN = "no_meta";
const THRESHOLDS = [0.8, 1];
const quiet = createLogger({ test: "spark_golden" });

const METRICS =
  `    - { name: antenna_bytes_total, group_by: antenna_id, reconcile_with: antenna_bytes_total }
    - { name: email_bytes_total, group_by: email, reconcile_with: user_bytes_total }
    - { name: app_rows, group_by: app, aggregation: count }
    - { name: smallest, group_by: [app, antenna_id], aggregation: min }
    - { name: biggest, group_by: app, aggregation: max }
    - { name: last_second, group_by: name, aggregation: max, field: timestamp }
    - { name: devices_per_email, group_by: email, aggregation: count_distinct, field: id }
    - name: chat_bytes
      group_by: [name, app]
      filter: { in: { app: [A, B] }, not_in: { email: [u1@x] } }
`;

/** Dataproc's batches API stand-in that runs each batch's script on a local Spark. */
const DATAPROC = { project: "antenna-test", region: "europe-west1" };

function planFor(
  lakeUri: string,
  policy: UnknownDevicePolicy,
  master?: string,
  dataprocEndpoint?: string,
  /** More `batch.spark` lines, and `conf` lines over the test's own. */
  more: { spark?: string; conf?: readonly string[] } = {},
): Plan {
  const gcs = lakeUri.startsWith("gs://");
  const dataproc = dataprocEndpoint
    ? `    dataproc: { project: ${DATAPROC.project}, region: ${DATAPROC.region}, endpoint: ${dataprocEndpoint} }\n`
    : "";
  return planFromYaml(
    `lake:
  uri: ${lakeUri}
${gcs ? `  gcs_endpoint: ${gcsEndpoint()}\n  gcs_project_id: test\n` : ""}speed:
  enabled: false
batch:
  engine: ${master ? "spark" : "process"}
  spark:
    master: ${master ?? "local[2]"}
    timeout: 15m
${dataproc}    conf:
      # Short runs: a JVM that compiles less starts sooner; the driver maps the stack's class archive.
      - "spark.driver.extraJavaOptions=${driverJava}"
      - "spark.executor.extraJavaOptions=${SHORT_JVM_OPTIONS}"
      - spark.executor.memory=512m
${(more.conf ?? []).map((c) => `      - "${c}"\n`).join("")}${
      more.spark ? `    ${more.spark}\n` : ""
    }  unknown_device: { policy: ${policy}, id: ${UNKNOWN} }
  metrics:
${METRICS}`,
    { env: {} },
  );
}

/** Event i of the hour, as the metrics see it. */
interface Row {
  id: string;
  antenna: string;
  app: string;
  bytes: number;
  second: number;
}

const devices = Array.from({ length: 28 }, (_, i) => deviceId(i));
const KNOWN = 24;
const events = generateHour({
  hour: H,
  events: 3_000,
  devices,
  antennas: 4,
  apps: ["A", "B", "C", "D"],
  partitions: 4,
  seed: 7,
});
// Late arrivals: partition 2's last offsets carry times from the hour's first minutes.
for (let i = 0; i < events.id.length; i++) {
  if (events.partition[i] === 2 && events.offset[i] >= 700) {
    events.timestamp[i] = H + (events.offset[i] - 700) * 1000;
  }
}
const rows: Row[] = Array.from({ length: events.id.length }, (_, i) => ({
  id: events.id[i],
  antenna: events.antenna_id[i],
  app: events.app[i],
  bytes: events.bytes[i],
  second: Math.floor(events.timestamp[i] / 1000),
}));

/** Usage per email of the known devices (each device's bytes), by plain loops. */
function usageOf(users: readonly TestUser[]): Map<string, number> {
  const email = new Map(users.map((u) => [u.id, u.email]));
  const out = new Map<string, number>();
  for (const r of rows) {
    const e = email.get(r.id);
    if (e !== undefined) out.set(e, (out.get(e) ?? 0) + r.bytes);
  }
  return out;
}

/** Users of the known devices; quotas put u0 over, u1 exactly at, u2 at 90 % of its quota. */
function makeUsers(): TestUser[] {
  const users = devices.slice(0, KNOWN).map((id, i) => ({
    id,
    name: `n${i % 5}`,
    email: `u${i % 8}@x`,
    quota: 1e12,
  }));
  const usage = usageOf(users);
  for (const u of users) {
    const total = usage.get(u.email)!;
    if (u.email === "u0@x") u.quota = total - 1;
    if (u.email === "u1@x") u.quota = total;
    if (u.email === "u2@x") u.quota = Math.ceil(total / 0.9);
  }
  return users;
}
const USERS = makeUsers();

type Snapshot = Record<string, string[]>;

/** What the test expects in the tables for hour H, computed from `rows` alone. */
function expected(
  policy: "drop" | "unknown_id",
  speedAlerts: ReadonlyArray<readonly [string, number]> = SPEED_ALERTS,
): Snapshot {
  const user = new Map(USERS.map((u) => [u.id, u]));
  const joined = rows.flatMap((r) => {
    const u = user.get(r.id);
    if (u) return [{ ...r, email: u.email, name: u.name }];
    return policy === "unknown_id" ? [{ ...r, email: UNKNOWN, name: UNKNOWN }] : [];
  });
  const fold = (
    type: string,
    key: (r: typeof joined[0]) => string,
    value: (r: typeof joined[0]) => number,
    combine: (a: number, b: number) => number,
    keep: (r: typeof joined[0]) => boolean = () => true,
  ) => {
    const m = new Map<string, number>();
    for (const r of joined.filter(keep)) {
      const k = key(r);
      m.set(k, m.has(k) ? combine(m.get(k)!, value(r)) : value(r));
    }
    return [...m].map(([k, v]) => `${type} ${k} ${v}`);
  };
  const add = (a: number, b: number) => a + b;
  const distinct = new Map<string, Set<string>>();
  for (const r of joined) {
    if (!distinct.has(r.email)) distinct.set(r.email, new Set());
    distinct.get(r.email)!.add(r.id);
  }
  const hourly = [
    ...fold("antenna_bytes_total", (r) => r.antenna, (r) => r.bytes, add),
    ...fold("email_bytes_total", (r) => r.email, (r) => r.bytes, add),
    ...fold("app_rows", (r) => r.app, () => 1, add),
    ...fold("smallest", (r) => `${r.app}|${r.antenna}`, (r) => r.bytes, Math.min),
    ...fold("biggest", (r) => r.app, (r) => r.bytes, Math.max),
    ...fold("last_second", (r) => r.name, (r) => r.second, Math.max),
    ...[...distinct].map(([e, s]) => `devices_per_email ${e} ${s.size}`),
    ...fold(
      "chat_bytes",
      (r) => `${r.name}|${r.app}`,
      (r) => r.bytes,
      add,
      (r) => ["A", "B"].includes(r.app) && r.email !== "u1@x",
    ),
  ];
  const usage = usageOf(USERS);
  const quota = new Map(USERS.map((u) => [u.email, u.quota]));
  const all = rows.reduce((n, r) => n + r.bytes, 0);
  const unknownBytes = rows.filter((r) => !user.has(r.id)).reduce((n, r) => n + r.bytes, 0);
  const batchTotal = policy === "drop" ? all - unknownBytes : all;
  const dropped = policy === "drop" ? unknownBytes : 0;
  // No speed layer ran: its side is 0, so the difference is the batch total.
  const recon = [
    ["antenna_bytes_total", "antenna_bytes_total"],
    ["email_bytes_total", "user_bytes_total"],
  ].map(([m, s]) => `${m} ${s} ${batchTotal} 0 ${batchTotal} 0 ${dropped} ${batchTotal + dropped}`);
  return {
    bytes_hourly: hourly.sort(),
    user_quota_limit: [...usage].filter(([e, u]) => u > quota.get(e)!)
      .map(([e, u]) => `${e} ${u} ${quota.get(e)}`).sort(),
    batch_reconciliation: recon.sort(),
    ...verdicts(usage, quota, speedAlerts),
  };
}

/**
 * Speed alerts the test puts in quota_alerts before a run, so the batch's
 * verdicts take every value: u0 over its quota at 100 % (confirmed), u2 at
 * 90 % at 80 % (confirmed) and at 100 % (unconfirmed), u3 far below at 80 %
 * (unconfirmed); what the batch finds reached with no speed alert is late.
 */
const SPEED_ALERTS: ReadonlyArray<readonly [string, number]> = [
  ["u0@x", 1],
  ["u2@x", 0.8],
  ["u2@x", 1],
  ["u3@x", 0.8],
];

/** quota_alerts and quota_alert_reconciliation as the batch must leave them, by plain loops. */
function verdicts(
  usage: ReadonlyMap<string, number>,
  quota: ReadonlyMap<string, number>,
  speed: ReadonlyArray<readonly [string, number]>,
): Snapshot {
  const alerts: string[] = [];
  const recon: string[] = [];
  for (const t of THRESHOLDS) {
    const counts = { speed: 0, confirmed: 0, unconfirmed: 0, late: 0 };
    for (const [e, u] of usage) {
      const reached = u >= t * quota.get(e)!;
      const fromSpeed = speed.some(([se, st]) => se === e && st === t);
      if (!reached && !fromSpeed) continue;
      const status = !reached ? "unconfirmed" : fromSpeed ? "confirmed" : "late";
      counts[status]++;
      if (fromSpeed) counts.speed++;
      alerts.push(`${e} ${t} ${fromSpeed ? "speed" : "batch"} ${status} ${u}`);
    }
    recon.push(`${t} ${counts.speed} ${counts.confirmed} ${counts.unconfirmed} ${counts.late}`);
  }
  return {
    quota_alerts: alerts.sort(),
    quota_alert_reconciliation: recon.sort(),
  };
}

/** Puts SPEED_ALERTS in quota_alerts for hour H, as the speed layer's detector would. */
async function insertSpeedAlerts(db: Db): Promise<void> {
  const quota = new Map(USERS.map((u) => [u.email, u.quota]));
  for (const [email, t] of SPEED_ALERTS) {
    await db.query(
      `INSERT INTO quota_alerts (hour, email, threshold, quota, usage, source, crossed_at)
       VALUES ($1::timestamp, $2, $3, $4, $5, 'speed', $1::timestamp)`,
      [new Date(H), email, t, quota.get(email)!, Math.ceil(t * quota.get(email)!)],
    );
  }
}

/** The tables of an hour, one string per row, sorted. */
async function snapshot(db: Db, hour: number): Promise<Snapshot> {
  const h = new Date(hour);
  const q = async (sql: string) =>
    (await db.query<Record<string, unknown>>(sql, [h])).map((r) => Object.values(r).join(" "))
      .sort();
  return {
    bytes_hourly: await q(
      "SELECT type, id, value FROM bytes_hourly WHERE timestamp = $1::timestamp",
    ),
    user_quota_limit: await q(
      "SELECT email, usage, quota FROM user_quota_limit WHERE timestamp = $1::timestamp",
    ),
    batch_reconciliation: await q(
      `SELECT metric, speed_metric, batch_value, speed_value, difference, late_dropped,
         unknown_dropped, unexplained FROM batch_reconciliation WHERE hour = $1::timestamp`,
    ),
    quota_alerts: await q(
      `SELECT email, threshold::float8, source, batch_status, batch_usage FROM quota_alerts
       WHERE hour = $1::timestamp`,
    ),
    quota_alert_reconciliation: await q(
      `SELECT threshold::float8, speed_alerts, confirmed, unconfirmed, late
       FROM quota_alert_reconciliation WHERE hour = $1::timestamp`,
    ),
  };
}

/**
 * The lake of the test: hour H written as the speed layer would, plus a
 * replay of one segment under an overlapping name (same rows, same offsets)
 * and, as late arrivals, partition 1's last segment written again later
 * under a name that overlaps it; hour EMPTY has no files.
 */
async function writeLake(store: ObjectStore): Promise<void> {
  await writeLakeHour(store, H, events, 2);
  const replay = (partition: number, from: number, to: number) => {
    const idx: number[] = [];
    for (let i = 0; i < events.partition.length; i++) {
      if (events.partition[i] === partition && events.offset[i] >= from && events.offset[i] <= to) {
        idx.push(i);
      }
    }
    idx.sort((a, b) => events.offset[a] - events.offset[b]);
    const part: EventColumns = pickRows(events, idx);
    return store.put(
      hourPath(H) + segmentFileName(partition, from, to + 1_000),
      encodeColumns(part, idx.length),
    );
  };
  await replay(0, 0, 200);
  await replay(1, 500, 749);
}

interface Setup {
  db: Db;
  store: ObjectStore;
  close(): Promise<void>;
}

async function setup(
  lake: "file" | "gs",
  speedAlerts = true,
): Promise<Setup & { uri: string }> {
  const fresh = await freshDatabase("sparkgold");
  const db = await openDb({ url: fresh.url, maxConnections: 3 });
  await migrate(db);
  await insertUsers(db, USERS);
  if (speedAlerts) await insertSpeedAlerts(db);
  const dir = lake === "file" ? await Deno.makeTempDir({ prefix: "spark-golden-" }) : "";
  const uri = lake === "file"
    ? `file://${dir}`
    : `gs://${uniqueName("sparkgold").replaceAll("_", "-")}/lake`;
  const store = openStore(planFor(uri, "drop").lake);
  await writeLake(store);
  return {
    db,
    store,
    uri,
    async close() {
      await db.close();
      await fresh.drop();
      if (dir) await Deno.remove(dir, { recursive: true });
    },
  };
}

async function runHours(s: Setup, plan: Plan, hours: number[], engineOptions?: EngineOptions) {
  const confirmation = createConfirmation({
    thresholds: THRESHOLDS,
    outputs: [],
    raisedBy: "golden",
    onRaised: () => {},
  });
  const runner = createBatchRunner({
    plan,
    db: s.db,
    store: s.store,
    log: quiet,
    participants: [confirmation],
    engineOptions,
  });
  const out = [];
  for (const h of hours) out.push(await runner.runHour(h, "manual"));
  return out;
}

/** A failed run left no row of hour H and no run file. */
async function assertWroteNothing(s: Setup) {
  assert.deepEqual(await snapshot(s.db, H), {
    bytes_hourly: [],
    user_quota_limit: [],
    batch_reconciliation: [],
    quota_alerts: [],
    quota_alert_reconciliation: [],
  });
  await assertNoRunFiles(s.store);
}

/** Run files are removed after every run, failed or not. */
async function assertNoRunFiles(store: ObjectStore) {
  assert.deepEqual((await store.list("spark-runs/")).map((e) => e.key), []);
}

const sparkTest = (name: string, fn: () => Promise<void>) =>
  Deno.test({ name, sanitizeOps: false, sanitizeResources: false, fn });

/** The drivers' JVM options: known once `up` has made (or found) the class archive. */
let driverJava = SHORT_JVM_OPTIONS;
// One cluster for every Spark test: `up` is idempotent and returns at once when it runs.
const cluster = stackUp(["spark"]).then(async () => {
  driverJava = await shortDriverJavaOptions();
});

sparkTest(
  "spark engine: local[2] and the cluster on a local lake write what the process engine writes, exact (drop)",
  async () => {
    await cluster;
    const process = await setup("file");
    const spark = await setup("file");
    const onCluster = await setup("file");
    try {
      const p = await runHours(process, planFor(process.uri, "drop"), [H, EMPTY]);
      const s = await runHours(spark, planFor(spark.uri, "drop", "local[2]"), [H, EMPTY]);
      for (const r of [...p, ...s]) assert.equal(r.status, "succeeded", r.error ?? "");
      assert.equal(s[0].rowsRead, rows.length);
      assert.equal(s[0].filesRead, p[0].filesRead);
      assert.deepEqual([s[0].unknownDevices, s[0].unknownRows], [
        p[0].unknownDevices,
        p[0].unknownRows,
      ]);
      assert.ok(s[0].unknownDevices > 0);
      assert.match(s[1].note ?? "", /no lake partition/);
      const want = expected("drop");
      assert.ok(want.user_quota_limit.length === 1 && want.quota_alerts.length === 7);
      // Every verdict occurs, so a Spark engine that got one wrong cannot pass.
      assert.deepEqual(want.quota_alert_reconciliation, ["0.8 2 1 1 2", "1 2 1 1 1"]);
      assert.deepEqual(await snapshot(process.db, H), want);
      assert.deepEqual(await snapshot(spark.db, H), want);
      assert.deepEqual(await snapshot(spark.db, EMPTY), await snapshot(process.db, EMPTY));
      await assertNoRunFiles(spark.store);
      // An executor of the cluster run is killed in the middle of it: Spark runs its
      // tasks again elsewhere, and the hour must still be exact (nothing lost, nothing twice).
      const killer = killAnExecutor();
      const [c] = await runHours(onCluster, planFor(onCluster.uri, "drop", SPARK_MASTER_URL), [H])
        .finally(killer.stop);
      assert.ok(await killer.killed, "no executor of the cluster run was killed");
      assert.equal(c.status, "succeeded", c.error ?? "");
      assert.deepEqual([c.rowsRead, c.filesRead], [rows.length, p[0].filesRead]);
      assert.deepEqual(await snapshot(onCluster.db, H), want);
      await assertNoRunFiles(onCluster.store);
    } finally {
      await process.close();
      await spark.close();
      await onCluster.close();
    }
  },
);

sparkTest(
  "spark engine: the standalone cluster, and local[2] as a Dataproc batch, on a gs:// lake write what the process engine writes, exact (unknown_id)",
  async () => {
    await cluster;
    const s = await setup("gs");
    const local = await setup("gs");
    // local[2] behind the Dataproc stand-in: the script and variables Dataproc would get run on
    // real Spark, so the Dataproc path is held to the whole golden result too.
    const dataproc = startDataprocStandin({
      pendingPolls: 1,
      execute: (b) => runBatchOnLocalSpark(local.store, local.uri, b, "local[2]"),
    });
    try {
      const [spark] = await runHours(s, planFor(s.uri, "unknown_id", SPARK_MASTER_URL), [H]);
      assert.equal(spark.status, "succeeded", spark.error ?? "");
      const want = expected("unknown_id");
      assert.deepEqual(await snapshot(s.db, H), want);
      await assertNoRunFiles(s.store);
      // On its own bucket and database: nothing a cluster run wrote can pass for its result.
      const [l] = await runHours(
        local,
        planFor(local.uri, "unknown_id", "local[2]", dataproc.endpoint),
        [H],
        { dataprocToken: () => Promise.resolve("injected-token"), dataprocPollMs: 500 },
      );
      assert.equal(l.status, "succeeded", l.error ?? "");
      assert.equal(l.rowsRead, rows.length);
      assert.equal(dataproc.batches.size, 1);
      const { batchId } = dataprocIds(`run-${l.runId}`);
      assert.equal(
        l.consoleUrl,
        `https://console.cloud.google.com/dataproc/batches/${DATAPROC.region}/${batchId}/summary?project=${DATAPROC.project}`,
      );
      assert.deepEqual(await snapshot(local.db, H), want);
      await assertNoRunFiles(local.store);
      // The process engine on the same lake and database writes the same rows.
      const [process] = await runHours(s, planFor(s.uri, "unknown_id"), [H]);
      assert.equal(process.status, "succeeded", process.error ?? "");
      assert.deepEqual(await snapshot(s.db, H), want);
    } finally {
      await dataproc.close();
      await s.close();
      await local.close();
    }
  },
);

sparkTest(
  "spark engine: the fail policy fails the run on local[2] and writes nothing",
  async () => {
    await cluster;
    const s = await setup("file", false);
    try {
      // local[2]: the policy is the engine's, after Spark; a cluster run adds only executors' start-up.
      const [r] = await runHours(s, planFor(s.uri, "fail", "local[2]"), [H]);
      assert.equal(r.status, "failed");
      assert.match(r.error ?? "", /devices have no user metadata/);
      assert.ok(r.unknownDevices > 0);
      // Spark counted the hour before the policy failed it: the run says what it read.
      const [rec] = await s.db.query<{ rows_read: number; files_read: number }>(
        "SELECT rows_read, files_read FROM batch_runs",
      );
      assert.equal(r.rowsRead, rows.length);
      assert.ok(r.filesRead > 0);
      assert.deepEqual([Number(rec.rows_read), Number(rec.files_read)], [r.rowsRead, r.filesRead]);
      await assertWroteNothing(s);
    } finally {
      await s.close();
    }
  },
);

sparkTest(
  "spark engine: executors that keep dying on the cluster fail the run with their exit reason, not at the timeout, and it writes nothing",
  async () => {
    await cluster;
    const s = await setup("file", false);
    try {
      // An executor JVM that cannot start: the master would relaunch it until batch.spark.timeout.
      const plan = planFor(s.uri, "drop", SPARK_MASTER_URL, undefined, {
        conf: ["spark.executor.extraJavaOptions=-Xss1k"],
        spark: "max_executor_failures: 4",
      });
      const [r] = await runHours(s, plan, [H]);
      assert.equal(r.status, "failed");
      assert.match(
        r.error ?? "",
        /^the cluster's executors keep failing: 4 lost \(batch\.spark\.max_executor_failures\), the last: Command exited with code 1; each one's stderr is on its worker, in work\/app-\d+-\d+\/<executor id>\/$/,
      );
      await assertWroteNothing(s);
      // Not completed: the scheduler runs the hour again, as after any failed run.
      assert.deepEqual(await s.db.query("SELECT hour FROM batch_hours"), []);
    } finally {
      await s.close();
    }
  },
);

sparkTest(
  "spark engine: a script that fails on Spark fails the run with Spark's message and writes nothing",
  async () => {
    await cluster;
    const s = await setup("file");
    try {
      const [ok] = await runHours(s, planFor(s.uri, "drop"), [H]);
      assert.equal(ok.status, "succeeded", ok.error ?? "");
      const before = await snapshot(s.db, H);
      await s.store.put(
        hourPath(H) + segmentFileName(9, 0, 0),
        new TextEncoder().encode("not parquet"),
      );
      const [r] = await runHours(s, planFor(s.uri, "drop", "local[2]"), [H]);
      assert.equal(r.status, "failed");
      assert.match(
        r.error ?? "",
        /^spark-sql failed \(exit \d+\): .*(parquet|footer|FAILED_READ_FILE)/i,
      );
      const runs = await s.db.query<{ status: string; error: string }>(
        "SELECT status, error FROM batch_runs ORDER BY run_id",
      );
      assert.deepEqual(runs.map((x) => x.status), ["succeeded", "failed"]);
      // Listed before Spark failed on one of them: every file, the broken one too.
      assert.equal(r.filesRead, ok.filesRead + 1);
      assert.equal(runs[1].error, r.error);
      assert.deepEqual(await snapshot(s.db, H), before);
      await assertNoRunFiles(s.store);
    } finally {
      await s.close();
    }
  },
);
