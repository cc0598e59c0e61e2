/**
 * The spec by section: the reload table derived from the fields' markers reads
 * every key where its section's compile step put it, a key without a marker
 * is refused, and the metric fields offer exactly the core's vocabulary.
 */
import assert from "node:assert/strict";
import { diffPlans, lintYaml, type Plan, planFromYaml, RELOAD_KEYS } from "../../src/config/mod.ts";
import { planPath, reloadKeysOf } from "../../src/config/reload_keys.ts";
import { PIPELINE_SPEC } from "../../src/config/spec.ts";
import type { FieldSpec, ObjectSpec } from "../../src/config/spec_types.ts";
import { AGGREGATIONS, EVENT_FIELDS, JOINED_FIELDS } from "../../src/core/vocabulary.ts";

/** Every key set to a value other than its default (`quota_alerts.hour` has only one). */
const EVERY_KEY = `
source:
  kind: kafka
  kafka:
    brokers: "a:1,b:2"
    topic: t1
    group: g
    client_id: cid
    dead_letter_topic: d1
    create_topics: false
    partitions: 7
    from_beginning: false
    session_timeout: 45s
  simulator:
    antennas: 3
    devices: 9
    apps: [A, B]
    rate: 5
    seed: 1
    late_share: 0.1
    malformed_share: 0.2
    max_lateness: 10s
    max_backlog: 2h
    history: 1h
schema: { max_payload_bytes: 1KiB, min_timestamp: "2010-01-01T00:00:00Z", max_future: 2h, max_app_length: 9 }
speed:
  enabled: false
  window: 10m
  allowed_lateness: 20s
  idle_timeout: 40s
  flush_interval: 2s
  max_dirty_rows: 99
  backfill_hours: 3
  metrics:
    - { name: m1, group_by: [app, id], aggregation: count, filter: { in: { app: [X] } } }
  quota_alerts:
    enabled: false
    thresholds: [1.0, 0.5]
    refresh_interval: 1m
    outputs:
      kafka: { topic: qa, brokers: "c:3", retry: { max_attempts: 3, backoff: 2s, max_backoff: 1m } }
      webhook:
        url: "https://x/y"
        secret: sss
        timeout: 3s
        concurrency: 2
        retry: { max_attempts: 4, backoff: 3s, max_backoff: 2m }
      stream: { enabled: false }
lake:
  uri: gs://bucket/prefix
  gcs_endpoint: http://127.0.0.1:1
  gcs_project_id: proj
  roll: { max_rows: 10, max_bytes: 2MiB, max_age: 30s }
  compaction: { enabled: false, after: 1m, copy_min_rows: 5 }
batch:
  enabled: false
  grace: 30m
  rerun_after: 7m
  run_lease: 6m
  tick: 10s
  catch_up_hours: 2
  unknown_device: { policy: drop, id: u }
  metrics:
    - { name: b1, group_by: email, aggregation: count, reconcile_with: m1 }
  backfill_hours: 4
  process_max_rows: 5
  engine: spark
  spark:
    master: spark://127.0.0.1:7077
    home: /opt/spark
    conf: [spark.executor.memory=2g]
    timeout: 5m
    max_executor_failures: 3
    dataproc:
      project: p
      region: europe-west1
      service_account: sa@p.iam.gserviceaccount.com
      subnetwork: default
      staging: gs://bucket/staging
      endpoint: http://127.0.0.1:2
  quota: { enabled: false }
database:
  url: postgres://u:p@h/db
  embedded: { dir: ./x, host: 0.0.0.0, port: 1234 }
  allow_simulator_writes: true
  max_connections: 3
api: { enabled: false, host: 0.0.0.0, port: 9999, token: tok }
`;

const FILE = "/tmp/p/pipeline.yaml";
const plan = (yaml: string): Plan => planFromYaml(yaml, { env: {}, file: FILE });

Deno.test("RELOAD_KEYS reads each key where its compile step put it: a change of every key is seen", () => {
  const d = diffPlans(plan(""), plan(EVERY_KEY));
  const unchangeable = ["speed.quota_alerts.hour"];
  assert.deepEqual(
    d.changes.map((c) => c.key),
    RELOAD_KEYS.map((k) => k.key).filter((k) => !unchangeable.includes(k)),
  );
  for (const k of RELOAD_KEYS) {
    assert.notEqual(k.read(plan(EVERY_KEY)), undefined, `${k.key} reads nothing`);
  }
});

Deno.test("reloadKeysOf() refuses a key without a reload marker, and takes a marked one", () => {
  const spec = (field: FieldSpec): ObjectSpec => ({
    type: "object",
    description: "t",
    fields: { part: { type: "object", description: "p", fields: { size: field } } },
  });
  assert.throws(
    () => reloadKeysOf(spec({ type: "int", description: "n", default: 1 })),
    /"part.size" has no reload marker/,
  );
  const [k] = reloadKeysOf(
    spec({ type: "duration", description: "n", default: "1s", reload: { live: ["batch"] } }),
  );
  assert.equal(k.key, "part.size");
  assert.deepEqual(k.live, ["batch"]);
  assert.equal(k.read({ part: { sizeMs: 5 } } as unknown as Plan), 5);
});

Deno.test("planPath() is the key in camelCase, durations and timestamps suffixed Ms", () => {
  const field = (type: "duration" | "timestamp" | "size" | "int") =>
    ({ type, description: "d" }) as FieldSpec;
  assert.deepEqual(planPath("speed.allowed_lateness", field("duration")), [
    "speed",
    "allowedLatenessMs",
  ]);
  assert.deepEqual(planPath("schema.min_timestamp", field("timestamp")), [
    "schema",
    "minTimestampMs",
  ]);
  assert.deepEqual(planPath("lake.roll.max_bytes", field("size")), ["lake", "roll", "maxBytes"]);
  assert.deepEqual(planPath("speed.quota_alerts.outputs.webhook.concurrency", field("int")), [
    "speed",
    "quotaAlerts",
    "outputs",
    "webhook",
    "concurrency",
  ]);
});

Deno.test("the metric fields offer the core's vocabulary: event fields, joined fields, aggregations", () => {
  const metric = (layer: "speed" | "batch") => {
    const section = PIPELINE_SPEC.fields[layer] as ObjectSpec;
    const list = section.fields.metrics as FieldSpec & { type: "list" };
    return (list.items as ObjectSpec).fields;
  };
  const values = (f: FieldSpec) => (f as FieldSpec & { type: "enum" }).values;
  assert.deepEqual(values(metric("speed").field), [...EVENT_FIELDS]);
  assert.deepEqual(values(metric("batch").field), [...EVENT_FIELDS, ...JOINED_FIELDS]);
  assert.deepEqual(values(metric("speed").aggregation), [...AGGREGATIONS]);
});

Deno.test("source.kafka.session_timeout: compiled to ms for the consumer, below the broker's 6s refused", () => {
  assert.equal(plan("").source.kafka.sessionTimeoutMs, 30_000);
  assert.equal(
    plan("source:\n  kafka: { session_timeout: 2m }\n").source.kafka.sessionTimeoutMs,
    120_000,
  );
  const problems = lintYaml("source:\n  kafka: { session_timeout: 5s }\n", "p.yaml", {});
  assert.deepEqual(problems.map((p) => `${p.path}: ${p.message}`), [
    'source.kafka.session_timeout: must be at least 6000ms, got "5s"',
  ]);
});
