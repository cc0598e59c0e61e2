/**
 * Every kind of batch metric, through the real job: generated hours in a local
 * lake, user metadata in real PostgreSQL, and a pipeline declaring sum, count,
 * min, max and count_distinct metrics, `in` and `not_in` filters (on app, on a
 * joined field, and on bytes, which takes the row-by-row path), multi-field and
 * joined group keys, and one key wide enough to leave the directly indexed
 * slots. Each run's `bytes_hourly` rows for the hour must equal totals computed
 * here with plain loops, under each unknown-device policy (`fail` keeps the
 * previous rows); the quota rows hold the user one byte over their quota and
 * not the user exactly at it.
 */
import assert from "node:assert/strict";
import { freshDatabase } from "../_support/services.ts";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import { type EventColumns, openStore } from "../../src/lake/mod.ts";
import { createBatchRunner } from "../../src/batch/mod.ts";
import {
  generateHour,
  hourlyRows,
  insertUsers,
  type TestUser,
  writeLakeHour,
} from "../_support/batch.ts";
import { deviceId } from "../../src/simulator/mod.ts";
import { planFromYaml } from "../../src/config/mod.ts";
import type { UnknownDevicePolicy } from "../../src/config/plan.ts";
import { createLogger } from "../../src/log.ts";

const H = Date.UTC(2026, 10, 28, 10);
const APPS = ["SKYPE", "FACEBOOK", "WHATSAPP", "TELEGRAM", "YOUTUBE"];
const MESSAGING = ["WHATSAPP", "TELEGRAM", "SKYPE"];
/** The configured value of joined fields for devices without metadata. */
const UNKNOWN = "no_metadata";
const quiet = createLogger({ test: "batch_metrics" });

/** One lake row joined with its user, as the test sees it. */
interface Row {
  id: string;
  antenna: string;
  app: string;
  bytes: number;
  /** Epoch seconds, the unit metrics see. */
  second: number;
  email: string;
  name: string;
}

type Fold = "sum" | "count" | "min" | "max" | "distinct";

/** A metric as declared in the pipeline, beside what it means in plain code. */
interface MetricCase {
  yaml: string;
  name: string;
  fold: Fold;
  key(r: Row): string;
  /** The aggregated value (sum, min, max) or the member counted (distinct). */
  value?(r: Row): number | string;
  keep?(r: Row): boolean;
}

const METRICS: MetricCase[] = [
  {
    name: "antenna_bytes",
    yaml: "group_by: antenna_id, aggregation: sum, field: bytes",
    fold: "sum",
    key: (r) => r.antenna,
    value: (r) => r.bytes,
  },
  {
    name: "app_events",
    yaml: "group_by: app, aggregation: count",
    fold: "count",
    key: (r) => r.app,
  },
  {
    name: "antenna_min_bytes",
    yaml: "group_by: antenna_id, aggregation: min, field: bytes",
    fold: "min",
    key: (r) => r.antenna,
    value: (r) => r.bytes,
  },
  {
    name: "app_max_bytes",
    yaml: "group_by: app, aggregation: max, field: bytes",
    fold: "max",
    key: (r) => r.app,
    value: (r) => r.bytes,
  },
  {
    name: "antenna_last_second",
    yaml: "group_by: antenna_id, aggregation: max, field: timestamp",
    fold: "max",
    key: (r) => r.antenna,
    value: (r) => r.second,
  },
  {
    name: "antenna_devices",
    yaml: "group_by: antenna_id, aggregation: count_distinct, field: id",
    fold: "distinct",
    key: (r) => r.antenna,
    value: (r) => r.id,
  },
  {
    name: "email_apps",
    yaml: "group_by: email, aggregation: count_distinct, field: app",
    fold: "distinct",
    key: (r) => r.email,
    value: (r) => r.app,
  },
  {
    name: "app_users",
    yaml: "group_by: app, aggregation: count_distinct, field: email",
    fold: "distinct",
    key: (r) => r.app,
    value: (r) => r.email,
  },
  {
    name: "antenna_messaging_bytes",
    yaml: `group_by: antenna_id, aggregation: sum, field: bytes, filter: { in: { app: [${
      MESSAGING.join(", ")
    }] } }`,
    fold: "sum",
    key: (r) => r.antenna,
    value: (r) => r.bytes,
    keep: (r) => MESSAGING.includes(r.app),
  },
  {
    name: "email_other_events",
    yaml: "group_by: email, aggregation: count, filter: { not_in: { app: [WHATSAPP, TELEGRAM] } }",
    fold: "count",
    key: (r) => r.email,
    keep: (r) => r.app !== "WHATSAPP" && r.app !== "TELEGRAM",
  },
  {
    name: "email_full_frames",
    yaml: "group_by: email, aggregation: count, filter: { in: { bytes: [1500] } }",
    fold: "count",
    key: (r) => r.email,
    keep: (r) => r.bytes === 1500,
  },
  {
    name: "antenna_app_nonzero_min",
    yaml:
      `group_by: [antenna_id, app], aggregation: min, field: bytes, filter: { not_in: { bytes: [0] }, in: { app: [SKYPE, YOUTUBE] } }`,
    fold: "min",
    key: (r) => `${r.antenna}|${r.app}`,
    value: (r) => r.bytes,
    keep: (r) => r.bytes !== 0 && (r.app === "SKYPE" || r.app === "YOUTUBE"),
  },
  {
    name: "app_nonzero_devices",
    yaml:
      "group_by: app, aggregation: count_distinct, field: id, filter: { not_in: { bytes: [0] } }",
    fold: "distinct",
    key: (r) => r.app,
    value: (r) => r.id,
    keep: (r) => r.bytes !== 0,
  },
  {
    name: "antenna_app_bytes",
    yaml: "group_by: [antenna_id, app], aggregation: sum, field: bytes",
    fold: "sum",
    key: (r) => `${r.antenna}|${r.app}`,
    value: (r) => r.bytes,
  },
  {
    name: "user_bytes",
    yaml: "group_by: [email, name], aggregation: sum, field: bytes",
    fold: "sum",
    key: (r) => `${r.email}|${r.name}`,
    value: (r) => r.bytes,
  },
  {
    name: "user_app_max_bytes",
    yaml:
      "group_by: [name, app], aggregation: max, field: bytes, filter: { not_in: { app: [FACEBOOK] } }",
    fold: "max",
    key: (r) => `${r.name}|${r.app}`,
    value: (r) => r.bytes,
    keep: (r) => r.app !== "FACEBOOK",
  },
  {
    name: "named_antenna_bytes",
    yaml:
      `group_by: antenna_id, aggregation: sum, field: bytes, filter: { in: { name: [User 1, User 4, ${UNKNOWN}] } }`,
    fold: "sum",
    key: (r) => r.antenna,
    value: (r) => r.bytes,
    keep: (r) => ["User 1", "User 4", UNKNOWN].includes(r.name),
  },
  {
    name: "app_distinct_sizes",
    yaml: "group_by: app, aggregation: count_distinct, field: bytes",
    fold: "distinct",
    key: (r) => r.app,
    value: (r) => r.bytes,
  },
  {
    // Wide enough in the second hour to go past the directly indexed slots.
    name: "device_antenna_app_events",
    yaml: "group_by: [id, antenna_id, app], aggregation: count",
    fold: "count",
    key: (r) => `${r.id}|${r.antenna}|${r.app}`,
  },
];

function pipelineYaml(lakeDir: string, policy: UnknownDevicePolicy): string {
  const metrics = METRICS.map((m) => `    - { name: ${m.name}, ${m.yaml} }\n`).join("");
  return `lake:
  uri: file://${lakeDir}
batch:
  unknown_device:
    policy: ${policy}
    id: ${UNKNOWN}
  quota:
    enabled: true
  metrics:
${metrics}`;
}

/** Every metric's expected rows: type → group key → value, by plain loops over `rows`. */
function expectedRows(rows: readonly Row[]): Map<string, Map<string, number>> {
  const out = new Map<string, Map<string, number>>();
  for (const m of METRICS) {
    const values = new Map<string, number>();
    const members = new Map<string, Set<string | number>>();
    for (const r of rows) {
      if (m.keep && !m.keep(r)) continue;
      const k = m.key(r);
      const prev = values.get(k);
      if (m.fold === "count") values.set(k, (prev ?? 0) + 1);
      else if (m.fold === "distinct") {
        if (!members.has(k)) members.set(k, new Set());
        members.get(k)!.add(m.value!(r));
      } else {
        const v = m.value!(r) as number;
        if (prev === undefined) values.set(k, v);
        else if (m.fold === "sum") values.set(k, prev + v);
        else if (m.fold === "min") values.set(k, Math.min(prev, v));
        else values.set(k, Math.max(prev, v));
      }
    }
    for (const [k, s] of members) values.set(k, s.size);
    if (values.size > 0) out.set(m.name, values);
  }
  return out;
}

async function quotaRows(db: Db, hour: number) {
  return await db.query<{ email: string; usage: number; quota: number }>(
    `SELECT email, usage, quota FROM user_quota_limit
     WHERE timestamp = $1::timestamp ORDER BY email`,
    [new Date(hour)],
  );
}

/** Asserts every metric's rows, one by one (a failure names the metric), then nothing else. */
function assertRows(actual: Map<string, Map<string, number>>, expected: typeof actual): void {
  for (const m of METRICS) assert.deepEqual(actual.get(m.name), expected.get(m.name), m.name);
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
}

// 24 devices of 12 users (two devices each), and 2 devices nobody knows.
const KNOWN = Array.from({ length: 24 }, (_, i) => deviceId(i));
const STRANGERS = [deviceId(900), deviceId(901)];
const USER_OF = new Map(
  KNOWN.map((id, i) => [id, { email: `user${i >> 1}@example.com`, name: `User ${i >> 1}` }]),
);
const EVENTS = 3000;

/** An hour of events with repeated sizes, so the filters on bytes select something. */
function hourEvents(hour: number, antennas: number, apps: readonly string[], seed: number) {
  const cols = generateHour({
    hour,
    events: EVENTS,
    devices: [...KNOWN, ...STRANGERS],
    antennas,
    apps,
    seed,
  });
  for (let i = 0; i < EVENTS; i++) {
    if (i % 5 === 0) cols.bytes[i] = 1500;
    else if (i % 13 === 0) cols.bytes[i] = 0;
  }
  return cols;
}

/** The lake rows joined with user metadata as the policy says, by hand. */
function joined(cols: EventColumns, policy: UnknownDevicePolicy): Row[] {
  const out: Row[] = [];
  for (let i = 0; i < cols.id.length; i++) {
    const u = USER_OF.get(cols.id[i]);
    if (!u && policy === "drop") continue;
    out.push({
      id: cols.id[i],
      antenna: cols.antenna_id[i],
      app: cols.app[i],
      bytes: cols.bytes[i],
      second: cols.timestamp[i] / 1000,
      email: u?.email ?? UNKNOWN,
      name: u?.name ?? UNKNOWN,
    });
  }
  return out;
}

/** Bytes per email of the known devices. */
function usageByEmail(cols: EventColumns): Map<string, number> {
  const usage = new Map<string, number>();
  for (let i = 0; i < cols.id.length; i++) {
    const u = USER_OF.get(cols.id[i]);
    if (u) usage.set(u.email, (usage.get(u.email) ?? 0) + cols.bytes[i]);
  }
  return usage;
}

Deno.test("runHour() computes every kind of batch metric exactly, under each unknown-device policy", async (t) => {
  const fresh = await freshDatabase("batch_metrics");
  const db = await openDb({ url: fresh.url, maxConnections: 3 });
  const lakeDir = await Deno.makeTempDir({ prefix: "batch_metrics_lake_" });
  try {
    await migrate(db);
    const plan = (policy: UnknownDevicePolicy) =>
      planFromYaml(pipelineYaml(lakeDir, policy), { env: {} });
    const store = openStore(plan("unknown_id").lake);
    const runner = (policy: UnknownDevicePolicy) =>
      createBatchRunner({
        plan: plan(policy),
        db,
        store,
        log: quiet,
        clock: () => H + 3 * 3_600_000,
      });

    const cols = hourEvents(H, 4, APPS, 7);
    await writeLakeHour(store, H, cols, 2);
    const strangerRows = cols.id.filter((id) => STRANGERS.includes(id)).length;
    assert.ok(STRANGERS.every((s) => cols.id.includes(s)), "both strangers have events");

    // user0 uses exactly their quota (no breach), user1 one byte more (breach).
    const usage = usageByEmail(cols);
    const atQuota = "user0@example.com";
    const overQuota = "user1@example.com";
    const quotaOf = (email: string) =>
      email === atQuota
        ? usage.get(atQuota)!
        : email === overQuota
        ? usage.get(overQuota)! - 1
        : 1e12;
    const users: TestUser[] = [...USER_OF].map(([id, u]) => ({
      id,
      ...u,
      quota: quotaOf(u.email),
    }));
    await insertUsers(db, users);
    const breaches = [
      { email: overQuota, usage: usage.get(overQuota)!, quota: usage.get(overQuota)! - 1 },
    ];

    for (const policy of ["unknown_id", "drop"] as const) {
      await t.step(`${policy}: every row of bytes_hourly matches the plain totals`, async () => {
        const s = await runner(policy).runHour(H, "manual");
        assert.equal(s.status, "succeeded", s.error ?? "");
        assert.equal(s.rowsRead, EVENTS);
        assert.equal(s.unknownDevices, 2);
        assert.equal(s.unknownRows, strangerRows);
        const expected = expectedRows(joined(cols, policy));
        assert.equal(expected.size, METRICS.length, "every metric has rows");
        if (policy === "unknown_id") {
          assert.ok(expected.get("user_bytes")!.has(`${UNKNOWN}|${UNKNOWN}`));
        } else {
          assert.ok(!expected.get("user_bytes")!.has(`${UNKNOWN}|${UNKNOWN}`));
          assert.match(
            s.note ?? "",
            new RegExp(`${strangerRows} rows of 2 unknown devices dropped`),
          );
        }
        assertRows(await hourlyRows(db, H), expected);
        assert.deepEqual(await quotaRows(db, H), breaches);
        assert.equal(s.breaches, 1);
      });
    }

    await t.step("fail: the run fails and the previous rows stay", async () => {
      const before = await hourlyRows(db, H);
      const r = runner("fail");
      const s = await r.runHour(H, "manual");
      assert.equal(s.status, "failed");
      assert.match(s.error ?? "", /2 devices have no user metadata/);
      const run = await r.getRun(s.runId);
      assert.equal(run?.status, "failed");
      assert.equal(run?.unknownDevices, 2);
      assert.equal(run?.unknownRows, strangerRows);
      assert.equal(s.unknownDevices, 2);
      assert.equal(s.unknownRows, strangerRows);
      assert.deepEqual(await hourlyRows(db, H), before);
      assertRows(before, expectedRows(joined(cols, "drop")));
      assert.deepEqual(await quotaRows(db, H), breaches);
    });

    await t.step("a key with more combinations than the directly indexed slots", async () => {
      // 26 devices × 500 antennas × 100 apps > 2^20 combinations of device_antenna_app_events.
      const manyApps = [...APPS, ...Array.from({ length: 95 }, (_, i) => `APP${i}`)];
      const H2 = H + 3_600_000;
      const wide = hourEvents(H2, 500, manyApps, 11);
      await writeLakeHour(store, H2, wide, 1);
      const s = await runner("unknown_id").runHour(H2, "manual");
      assert.equal(s.status, "succeeded", s.error ?? "");
      assertRows(await hourlyRows(db, H2), expectedRows(joined(wide, "unknown_id")));
      const over = [...usageByEmail(wide)].filter(([e, u]) => u > quotaOf(e)).map(([e]) => e);
      assert.deepEqual((await quotaRows(db, H2)).map((b) => b.email), over.sort());
      assertRows(await hourlyRows(db, H), expectedRows(joined(cols, "drop"))); // H untouched
    });
  } finally {
    await db.close();
    await fresh.drop();
    await Deno.remove(lakeDir, { recursive: true });
  }
});
