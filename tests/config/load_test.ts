/**
 * Loading and compiling: the repo's pipeline.yaml, the embedded defaults, env
 * interpolation, the commented-out example metrics, the frozen Plan, redaction
 * and the `check` command.
 */

import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  DEFAULTS_FILE,
  loadPlan,
  planFromYaml,
  redactPlan,
} from "../../src/config/mod.ts";
import { main } from "../../src/cli/check.ts";
import { interpolate } from "../../src/config/interpolate.ts";
import { DEFAULT_APPS } from "../../src/core/apps.ts";

const REPO = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
const PIPELINE = join(REPO, "pipeline.yaml");
const FIXTURES = join(REPO, "tests", "testdata", "config");

Deno.test("loadPlan() compiles the repo's pipeline.yaml with no env to the embedded defaults", async () => {
  const plan = await loadPlan(PIPELINE, { env: {} });
  assert.equal(plan.file, PIPELINE);
  assert.equal(plan.source.kind, "simulator");
  assert.deepEqual(plan.source.kafka.brokers, ["127.0.0.1:9092"]);
  assert.equal(plan.source.kafka.topic, "devices");
  assert.equal(plan.source.kafka.deadLetterTopic, "devices.dlq");
  assert.deepEqual(plan.source.simulator.apps, DEFAULT_APPS);
  assert.equal(plan.database.url, undefined);
  assert.equal(plan.database.embedded.dir, join(REPO, "data", "pglite"));
  assert.equal(plan.database.embedded.port, 55432);
  assert.equal(plan.database.allowSimulatorWrites, false);
  assert.deepEqual(
    { uri: plan.lake.uri, kind: plan.lake.kind, root: plan.lake.root, prefix: plan.lake.prefix },
    {
      uri: `file://${join(REPO, "data", "lake")}`,
      kind: "file",
      root: join(REPO, "data", "lake"),
      prefix: "",
    },
  );
  assert.equal(plan.lake.gcsEndpoint, undefined);
  assert.equal(plan.api.port, 8080);
  assert.equal(plan.api.token, undefined);
  assert.equal(plan.speed.windowMs, 300_000);
  assert.equal(plan.speed.allowedLatenessMs, 15_000);
  assert.deepEqual(plan.lake.compaction, { enabled: true, afterMs: 300_000, copyMinRows: 20_000 });
  assert.equal(plan.schema.minTimestampMs, Date.UTC(2000, 0, 1));
  assert.deepEqual(plan.speed.metrics.map((m) => [m.name, m.groupBy, m.aggregation, m.field]), [
    ["antenna_bytes_total", ["antenna_id"], "sum", "bytes"],
    ["user_bytes_total", ["id"], "sum", "bytes"],
    ["app_bytes_total", ["app"], "sum", "bytes"],
  ]);
  assert.deepEqual(plan.batch.metrics.map((m) => [m.name, m.groupBy, m.reconcileWith]), [
    ["antenna_bytes_total", ["antenna_id"], "antenna_bytes_total"],
    ["email_bytes_total", ["email"], "user_bytes_total"],
    ["app_bytes_total", ["app"], "app_bytes_total"],
  ]);
  assert.equal(plan.batch.quota.enabled, true);
});

Deno.test("loadPlan() applies env overrides of the repo's pipeline.yaml", async () => {
  const plan = await loadPlan(PIPELINE, {
    env: {
      SOURCE: "kafka",
      KAFKA_BROKERS: "10.0.0.5:9092, 10.0.0.6:9092",
      DATABASE_URL: "postgres://app:s3cret@10.0.0.7:5432/antenna",
      LAKE_URI: "gs://my-bucket/antenna/lake/",
      GCS_ENDPOINT: "http://127.0.0.1:4443",
      API_TOKEN: "t0ken",
      API_PORT: "9090",
      ALLOW_SIMULATOR_WRITES: "true",
    },
  });
  assert.equal(plan.source.kind, "kafka");
  assert.deepEqual(plan.source.kafka.brokers, ["10.0.0.5:9092", "10.0.0.6:9092"]);
  assert.equal(plan.database.url, "postgres://app:s3cret@10.0.0.7:5432/antenna");
  assert.deepEqual([plan.lake.kind, plan.lake.root, plan.lake.prefix, plan.lake.uri], [
    "gcs",
    "my-bucket",
    "antenna/lake",
    "gs://my-bucket/antenna/lake",
  ]);
  assert.equal(plan.lake.gcsEndpoint, "http://127.0.0.1:4443");
  assert.equal(plan.api.token, "t0ken");
  assert.equal(plan.api.port, 9090);
  assert.equal(plan.database.allowSimulatorWrites, true);
});

Deno.test("planFromYaml() with no text gives the same defaults as the repo's pipeline.yaml", async () => {
  const fromFile = await loadPlan(PIPELINE, { env: {} });
  const defaults = planFromYaml("", { env: {} });
  assert.equal(defaults.file, DEFAULTS_FILE);
  // Relative paths of the defaults resolve against the working directory instead.
  const strip = (p: typeof defaults) => ({
    ...p,
    file: "",
    lake: { ...p.lake, uri: "", root: "" },
    database: { ...p.database, embedded: { ...p.database.embedded, dir: "" } },
  });
  assert.deepEqual(strip(defaults), strip(fromFile));
  assert.equal(defaults.lake.root, join(Deno.cwd(), "data", "lake"));
});

Deno.test("loadPlan() without a path falls back to the built-in defaults when ./pipeline.yaml is absent", async () => {
  const dir = await Deno.makeTempDir();
  const cwd = Deno.cwd();
  try {
    Deno.chdir(dir);
    const plan = await loadPlan(undefined, { env: {} });
    assert.equal(plan.file, DEFAULTS_FILE);
    assert.equal(plan.lake.root, join(await Deno.realPath(dir), "data", "lake"));
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPlan() resolves a relative lake path against the config file's folder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(dir, "p.yaml"), "lake:\n  uri: file://lake\n");
    const plan = await loadPlan(join(dir, "p.yaml"), { env: {} });
    assert.equal(plan.lake.root, join(dir, "lake"));
    const abs = planFromYaml("lake:\n  uri: file:///srv/lake\n", { env: {} });
    assert.equal(abs.lake.root, "/srv/lake");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadPlan() throws a ConfigError listing every problem, one per line", async () => {
  const file = join(FIXTURES, "many.yaml");
  const err = await loadPlan(file, { env: {} }).then(() => undefined, (e) => e);
  assert.ok(err instanceof ConfigError);
  assert.equal(err.problems.length, 12);
  const lines = err.message.split("\n");
  assert.equal(lines[0], "invalid pipeline config (12 problems):");
  assert.equal(
    lines[1],
    `${file}:3:9: source.kind: unknown value "kafak" (expected one of: kafka, simulator)`,
  );
  assert.equal(lines.length, 13);
});

Deno.test("loadPlan() names an unreadable file", async () => {
  await assert.rejects(
    loadPlan("/nonexistent/p.yaml"),
    /cannot read pipeline file "\/nonexistent\/p.yaml"/,
  );
});

Deno.test("the commented-out example metrics of pipeline.yaml compile once uncommented", async () => {
  const text = await Deno.readTextFile(PIPELINE);
  // Uncomment the indented `# - name:` blocks (the examples), keeping their indentation.
  const uncommented = text.replace(
    /^( +)# (.*)$/gm,
    (line, indent, rest) =>
      /^ *(- name|group_by|aggregation|field|filter|in|app|reconcile_with|description)[: ]/.test(
          rest,
        )
        ? `${indent}${rest}`
        : line,
  );
  assert.notEqual(uncommented, text);
  const plan = planFromYaml(uncommented, { file: PIPELINE, env: {} });
  const speed = plan.speed.metrics.map((m) => m.name);
  assert.deepEqual(speed.slice(3), ["messaging_bytes_total", "antenna_devices"]);
  const messaging = plan.speed.metrics[3];
  assert.deepEqual(messaging.filter, { in: { app: ["WHATSAPP", "TELEGRAM", "SKYPE"] } });
  assert.equal(plan.speed.metrics[4].aggregation, "count_distinct");
  assert.equal(plan.speed.metrics[4].field, "id");
  const batch = plan.batch.metrics.map((m) => [m.name, m.reconcileWith]);
  assert.deepEqual(batch.slice(3), [
    ["messaging_bytes_total", "messaging_bytes_total"],
    ["antenna_devices", undefined],
  ]);
});

Deno.test("planFromYaml() compiles filters, group_by lists and units", () => {
  const plan = planFromYaml(
    `speed:
  window: 15m
  metrics:
    - name: antenna_app_max
      group_by: [antenna_id, app]
      aggregation: max
      filter:
        not_in: { app: [NETFLIX] }
batch:
  metrics:
    - { name: per_name, group_by: name, aggregation: count, filter: { in: { email: [a@b.c] } } }
lake:
  roll: { max_bytes: 1MB, max_age: 1m30s }
`,
    { env: {} },
  );
  assert.deepEqual(plan.speed.metrics[0], {
    name: "antenna_app_max",
    groupBy: ["antenna_id", "app"],
    aggregation: "max",
    field: "bytes",
    filter: { notIn: { app: ["NETFLIX"] } },
  });
  assert.deepEqual(plan.batch.metrics[0].filter, { in: { email: ["a@b.c"] } });
  assert.equal(plan.speed.windowMs, 900_000);
  assert.equal(plan.lake.roll.maxBytes, 1_000_000);
  assert.equal(plan.lake.roll.maxAgeMs, 90_000);
});

Deno.test("planFromYaml() returns a deeply frozen plan", () => {
  const plan = planFromYaml("", { env: {} });
  for (
    const obj of [
      plan,
      plan.speed,
      plan.speed.metrics,
      plan.speed.metrics[0].groupBy,
      plan.lake.roll,
    ]
  ) {
    assert.ok(Object.isFrozen(obj));
  }
  assert.throws(() => {
    (plan.speed as { windowMs: number }).windowMs = 1;
  }, TypeError);
});

Deno.test("interpolate() substitutes, defaults, escapes and refuses unset variables", () => {
  const cases: [string, Record<string, string | undefined>, string | RegExp][] = [
    ["${A}", { A: "x" }, "x"],
    ["${A:-d}", {}, "d"],
    ["${A:-d}", { A: "" }, "d"],
    ["${A:-}", {}, ""],
    ["${A}:${B:-9092}", { A: "h", B: undefined }, "h:9092"],
    ["$${A} and $$", { A: "x" }, "${A} and $$"],
    ["${A:-file://./x}", {}, "file://./x"],
    ["${A}", {}, /A is not set/],
    ["${1A}", {}, /bad variable reference/],
    ["${A", {}, /unterminated/],
  ];
  for (const [text, env, want] of cases) {
    const r = interpolate(text, env);
    if (typeof want === "string") assert.deepEqual(r.ok && r.value, want, text);
    else assert.ok(!r.ok && want.test(r.message), text);
  }
});

Deno.test("redactPlan() masks URL passwords and the API token", () => {
  const plan = planFromYaml(
    "database:\n  url: postgres://app:s3cret@db:5432/x\napi:\n  token: t0ken\n",
    { env: {} },
  );
  const red = redactPlan(plan) as typeof plan;
  assert.equal(red.database.url, "postgres://app:***@db:5432/x");
  assert.equal(red.api.token, "***");
  assert.ok(!JSON.stringify(red).includes("s3cret"));
  assert.ok(!JSON.stringify(red).includes("t0ken"));
  assert.equal(plan.database.url, "postgres://app:s3cret@db:5432/x");
});

Deno.test("check main() prints ok for a valid file and every problem for a broken one", async () => {
  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l), env: {} };
  assert.equal(await main([PIPELINE], io), 0);
  assert.deepEqual(lines, [`${PIPELINE}: ok (3 speed metrics, 3 batch metrics)`]);
  lines.length = 0;
  const bad = join(FIXTURES, "unknown_key.yaml");
  assert.equal(await main([bad], io), 1);
  assert.deepEqual(lines, [
    `${bad}:6:7: speed.metrics[3].group_by: missing required field "group_by"`,
    `${bad}:7:7: speed.metrics[3].grup_by: unknown key "grup_by" (expected one of: name, group_by, aggregation, field, filter, description)`,
    `2 problems in ${bad}`,
  ]);
  lines.length = 0;
  assert.equal(await main(["/nonexistent.yaml"], io), 2);
  assert.match(lines[0], /cannot read "\/nonexistent.yaml"/);
});
