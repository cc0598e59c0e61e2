/**
 * The Spark SQL renderer on its text alone (no Spark): each metric kind,
 * filter, group key and unknown-device policy becomes the SQL that means what
 * compute.ts does. tests/batch/spark_golden_test.ts runs the scripts on Spark.
 */
import assert from "node:assert/strict";
import { planFromYaml } from "../../src/config/mod.ts";
import type { MetricPlan, UnknownDevicePolicy } from "../../src/config/plan.ts";
import {
  COMPUTE_STATEMENTS,
  droppedSql,
  metricSql,
  renderHourScript,
  sqlString,
  VARIABLES,
} from "../../src/batch/spark/render.ts";

function batchOf(metricsYaml: string, policy: UnknownDevicePolicy = "unknown_id", quota = true) {
  return planFromYaml(
    `batch:
  unknown_device: { policy: ${policy}, id: "it's \${x}" }
  quota: { enabled: ${quota} }
  metrics:
${metricsYaml}`,
    // A value that looks like a script variable once interpolated.
    { env: { x: "${out}" } },
  ).batch;
}

const one = (yaml: string): MetricPlan => batchOf(`    - ${yaml}\n`).metrics[0];
const squash = (s: string) => s.replace(/\s+/g, " ").trim();

Deno.test("metricSql() spells each aggregation over its field as BIGINT", () => {
  const cases: [string, string][] = [
    ["{ name: m, group_by: app, aggregation: sum }", "CAST(sum(bytes) AS BIGINT) AS value"],
    ["{ name: m, group_by: app, aggregation: count }", "count(*) AS value"],
    ["{ name: m, group_by: app, aggregation: min }", "CAST(min(bytes) AS BIGINT) AS value"],
    [
      "{ name: m, group_by: app, aggregation: max, field: timestamp }",
      "CAST(max(ts) AS BIGINT) AS value",
    ],
    [
      "{ name: m, group_by: app, aggregation: count_distinct, field: id }",
      "count(DISTINCT `id`) AS value",
    ],
    [
      "{ name: m, group_by: app, aggregation: count_distinct, field: bytes }",
      "count(DISTINCT CAST(bytes AS STRING)) AS value",
    ],
  ];
  for (const [yaml, expected] of cases) {
    const sql = squash(metricSql(one(yaml), ""));
    assert.ok(sql.includes(expected), `${yaml}: ${sql}`);
    assert.ok(sql.startsWith("SELECT 'metric' AS result, 'm' AS item, `app` AS group_key"), sql);
    assert.ok(sql.endsWith("FROM joined GROUP BY `app`"), sql);
  }
});

Deno.test("metricSql() keys several fields with | and numbers as their decimal text", () => {
  const sql = squash(metricSql(one("{ name: m, group_by: [email, timestamp, bytes] }"), ""));
  assert.ok(
    sql.includes(
      "concat_ws('|', `email`, CAST(ts AS STRING), CAST(bytes AS STRING)) AS group_key",
    ),
    sql,
  );
  assert.ok(
    sql.endsWith(
      "GROUP BY concat_ws('|', `email`, CAST(ts AS STRING), CAST(bytes AS STRING))",
    ),
    sql,
  );
  const name = squash(metricSql(one("{ name: m, group_by: name }"), ""));
  assert.ok(name.includes("`name` AS group_key"), name);
});

Deno.test("metricSql() turns in and not_in filters into string comparisons, ANDed with the kept rows", () => {
  const m = one(
    '{ name: m, group_by: antenna_id, filter: { in: { app: [SKYPE, "O\'NE"], email: [a@x] }, not_in: { bytes: [0, 7] } } }',
  );
  const sql = squash(metricSql(m, "known"));
  assert.ok(
    sql.includes(
      "WHERE known AND `app` IN ('SKYPE', 'O\\u0027NE') AND `email` IN ('a@x') AND CAST(bytes AS STRING) NOT IN ('0', '7')",
    ),
    sql,
  );
});

Deno.test("sqlString() escapes what could end a literal, split the script or look like a variable", () => {
  assert.equal(sqlString("plain-Value_1@x.io"), "'plain-Value_1@x.io'");
  assert.equal(sqlString("a'b"), "'a\\u0027b'");
  assert.equal(sqlString("a\\b;c"), "'a\\u005cb\\u003bc'");
  assert.equal(sqlString("${out}"), "'\\u0024\\u007bout\\u007d'");
  assert.equal(sqlString("é😀"), "'\\u00e9\\ud83d\\ude00'");
});

Deno.test("renderHourScript() reads the hour folder's lake files and deduplicates on (partition, offset)", () => {
  const sql = renderHourScript(batchOf("    - { name: m, group_by: app }\n"));
  assert.ok(sql.includes("OPTIONS (path '${hour_dir}', pathGlobFilter 'part-p*.parquet')"));
  assert.ok(sql.includes("PARTITION BY `partition`, `offset`"));
  assert.ok(sql.includes("WHERE copy = 1"));
  assert.ok(sql.includes("unix_seconds(`timestamp`) AS ts"));
  assert.ok(sql.includes("SET spark.sql.session.timeZone=UTC;"));
  assert.ok(sql.includes("USING parquet OPTIONS (path '${users}')"));
  // One statement writes the hour: one Spark job.
  assert.equal(sql.match(/INSERT OVERWRITE DIRECTORY/g)?.length, 1);
  // The hour is read, deduplicated and joined once (an eager cache), not once per part.
  assert.equal(sql.match(/CACHE TABLE joined AS/g)?.length, 1);
  assert.ok(!sql.includes("VIEW joined"));
  // queryMs() times the statements from the cache on: they are the script's last ones.
  const statements = sql.split(/;\n/).map((x) => x.trim()).filter(Boolean);
  assert.deepEqual(
    statements.slice(-COMPUTE_STATEMENTS).map((x) => x.split("\n")[0].split(" AS")[0]),
    [
      "CACHE TABLE joined",
      "CREATE OR REPLACE TEMPORARY VIEW emails",
      "INSERT OVERWRITE DIRECTORY '${out}/hour' USING parquet",
    ],
  );
  assert.ok(sql.includes("INSERT OVERWRITE DIRECTORY '${out}/hour' USING parquet"));
  for (const r of ["metric", "email", "breach", "stat", "unknown"]) {
    assert.ok(sql.includes(`SELECT '${r}'`), r);
  }
  // Only the declared variables appear.
  const used = new Set([...sql.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]));
  assert.deepEqual([...used].sort(), [...VARIABLES].sort());
});

Deno.test("renderHourScript() applies each unknown-device policy", () => {
  const metrics = "    - { name: m, group_by: email, reconcile_with: user_bytes_total }\n";
  const speed = planFromYaml("", { env: {} }).speed.metrics;
  const keep = squash(renderHourScript(batchOf(metrics, "unknown_id"), speed));
  // unknown_id: every row counts, the placeholder (escaped) stands in for email and name.
  assert.ok(keep.includes("COALESCE(u.email, 'it\\u0027s \\u0024\\u007bout\\u007d') AS email"));
  assert.ok(keep.includes("FROM joined GROUP BY `email`"), keep);
  assert.ok(!keep.includes("SELECT 'dropped'"));
  for (const policy of ["drop", "fail"] as const) {
    const sql = squash(renderHourScript(batchOf(metrics, policy), speed));
    assert.ok(sql.includes("FROM joined WHERE known GROUP BY `email`"), policy);
    assert.equal(sql.includes("SELECT 'dropped', 'user_bytes_total'"), policy === "drop");
  }
  assert.ok(keep.includes("count(DISTINCT CASE WHEN NOT known THEN id END) AS unknown_devices"));
  assert.ok(keep.includes("count_if(NOT known) AS unknown_rows"));
});

Deno.test("droppedSql() sums what a reconciled speed metric counted of the dropped rows", () => {
  const speed = planFromYaml(
    `speed:
  metrics:
    - { name: s_bytes, group_by: app, filter: { not_in: { app: [X] } } }
    - { name: s_rows, group_by: app, aggregation: count }
batch:
  metrics: [{ name: b, group_by: app, reconcile_with: s_bytes }]
`,
    { env: {} },
  ).speed.metrics;
  assert.equal(
    squash(droppedSql(speed[0])),
    "SELECT 'dropped', 's_bytes', CAST(NULL AS STRING), CAST(COALESCE(sum(bytes), 0) AS BIGINT), CAST(NULL AS BIGINT) FROM joined WHERE NOT known AND `app` NOT IN ('X')",
  );
  assert.ok(squash(droppedSql(speed[1])).includes("COALESCE(sum(1), 0)"));
});

Deno.test("renderHourScript() writes breaches only with the quota on, usage only when bytes are read", () => {
  const on = squash(renderHourScript(batchOf("    - { name: m, group_by: app }\n")));
  assert.ok(
    on.includes(
      "SELECT 'breach', CAST(NULL AS STRING), email, usage, quota FROM emails WHERE usage > quota",
    ),
  );
  assert.ok(on.includes("CAST(max(quota) AS BIGINT) AS quota FROM users GROUP BY email"));
  assert.ok(on.includes("WHERE device_usage > 0 GROUP BY email ) d ON q.email = d.email;"));
  const off = squash(
    renderHourScript(
      batchOf("    - { name: m, group_by: app, aggregation: count }\n", "drop", false),
    ),
  );
  assert.ok(!off.includes("SELECT 'breach'"));
  // No metric reads bytes and the quota is off: the core has no usage either.
  assert.ok(off.includes("d ON q.email = d.email AND false;"));
});
