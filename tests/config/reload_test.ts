/**
 * Reloading pipeline.yaml, without services: which keys are live
 * (diffPlans over the table of reload_keys.ts), the plan's content hash, a
 * metric's definition, and the file watcher. The reload controller's
 * outcomes are tested in tests/runtime/controller_test.ts.
 */
import assert from "node:assert/strict";
import {
  definitionHash,
  diffPlans,
  metricDefinition,
  type Plan,
  planFromYaml,
  planHash,
  refusalLine,
  RELOAD_KEYS,
  watchFile,
} from "../../src/config/mod.ts";
import { PIPELINE_SPEC } from "../../src/config/spec.ts";
import type { FieldSpec } from "../../src/config/spec_types.ts";
import { createLogger } from "../../src/log.ts";

const BASE = `
speed:
  window: 5m
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id }
    - name: app_bytes_total
      group_by: app
      description: Bytes per app.
batch:
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id, reconcile_with: antenna_bytes_total }
api:
  token: s3cret
`;

const FILE = "/tmp/p/pipeline.yaml";
const plan = (yaml: string): Plan => planFromYaml(yaml, { env: {}, file: FILE });

function leaves(spec: FieldSpec, path: string, out: string[]): string[] {
  if (spec.type === "object") {
    for (const [k, f] of Object.entries(spec.fields)) leaves(f, path ? `${path}.${k}` : k, out);
  } else out.push(path);
  return out;
}

Deno.test("RELOAD_KEYS names every leaf key of the spec once, each live or with a reason", () => {
  const spec = leaves(PIPELINE_SPEC, "", []);
  const table = RELOAD_KEYS.map((k) => k.key);
  assert.deepEqual(table, spec, "reload_keys.ts must follow the spec, in spec order");
  for (const k of RELOAD_KEYS) {
    assert.ok((k.live !== undefined) !== (k.restart !== undefined), `${k.key}: live xor restart`);
  }
});

Deno.test("RELOAD_KEYS: the keys the issue lists as restart-only are restart-only", () => {
  const restart = new Set(RELOAD_KEYS.filter((k) => k.restart).map((k) => k.key));
  for (
    const k of [
      "source.kind",
      "source.kafka.brokers",
      "source.kafka.topic",
      "source.kafka.group",
      "database.url",
      "lake.uri",
      "speed.window",
      "api.host",
      "api.port",
    ]
  ) assert.ok(restart.has(k), k);
  const live = new Set(RELOAD_KEYS.filter((k) => k.live).map((k) => k.key));
  for (
    const k of [
      "speed.metrics",
      "batch.metrics",
      "batch.quota.enabled",
      "schema.max_payload_bytes",
      "speed.flush_interval",
      "lake.roll.max_age",
      "batch.grace",
      "batch.tick",
    ]
  ) assert.ok(live.has(k), k);
});

const cases: {
  name: string;
  edit: string;
  changes: string[];
  refused?: string[];
  speedSwitch: boolean;
}[] = [
  { name: "a comment", edit: BASE + "# nothing\n", changes: [], speedSwitch: false },
  {
    name: "a speed metric added",
    edit: BASE.replace(
      "    - name: app_bytes_total",
      "    - { name: messaging_bytes, group_by: antenna_id, filter: { in: { app: [SKYPE] } } }\n    - name: app_bytes_total",
    ),
    changes: ["speed.metrics"],
    speedSwitch: true,
  },
  {
    name: "a description only",
    edit: BASE.replace("Bytes per app.", "Bytes of each app."),
    changes: ["speed.metrics"],
    speedSwitch: false,
  },
  {
    name: "batch settings and quota",
    edit: BASE.replace("batch:\n", "batch:\n  grace: 20m\n  quota: { enabled: false }\n"),
    changes: ["batch.grace", "batch.quota.enabled"],
    speedSwitch: false,
  },
  {
    name: "flush and roll settings",
    edit: BASE.replace("  window: 5m", "  window: 5m\n  flush_interval: 2s") +
      "lake:\n  roll: { max_age: 30s }\n",
    changes: ["speed.flush_interval", "lake.roll.max_age"],
    speedSwitch: true,
  },
  {
    name: "the window and the topic",
    edit: BASE.replace("window: 5m", "window: 10m") + "source:\n  kafka: { topic: other }\n",
    changes: ["source.kafka.topic", "speed.window"],
    refused: ["source.kafka.topic", "speed.window"],
    speedSwitch: false,
  },
  {
    name: "the API token (a secret)",
    edit: BASE.replace("s3cret", "other"),
    changes: ["api.token"],
    refused: ["api.token"],
    speedSwitch: false,
  },
];

for (const c of cases) {
  Deno.test(`diffPlans() classifies ${c.name}`, () => {
    const d = diffPlans(plan(BASE), plan(c.edit));
    assert.deepEqual(d.changes.map((x) => x.key), c.changes);
    assert.deepEqual(d.refused.map((x) => x.key), c.refused ?? []);
    assert.equal(d.speedSwitch, c.speedSwitch);
    assert.equal(d.empty, c.changes.length === 0);
  });
}

Deno.test("diffPlans() sorts metrics into added, changed, removed and described", () => {
  const next = plan(`
speed:
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id, filter: { not_in: { app: [SKYPE] } } }
    - { name: app_bytes_total, group_by: app, description: Other words. }
    - { name: devices, group_by: antenna_id, aggregation: count_distinct, field: id }
batch:
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id, reconcile_with: antenna_bytes_total }
    - { name: app_count, group_by: app, aggregation: count }
api:
  token: s3cret
`);
  const d = diffPlans(plan(BASE), next);
  assert.deepEqual(d.speedMetrics.added.map((m) => m.name), ["devices"]);
  assert.deepEqual(d.speedMetrics.changed.map((m) => m.name), ["antenna_bytes_total"]);
  assert.deepEqual(d.speedMetrics.described.map((m) => m.name), ["app_bytes_total"]);
  assert.deepEqual(d.speedMetrics.removed, []);
  assert.deepEqual(d.batchMetrics.added.map((m) => m.name), ["app_count"]);
  const back = diffPlans(next, plan(BASE));
  assert.deepEqual(back.speedMetrics.removed, ["devices"]);
  assert.deepEqual(back.batchMetrics.removed, ["app_count"]);
});

Deno.test("refusalLine() names the key, says why and that a restart applies it; secrets stay hidden", () => {
  const d = diffPlans(plan(BASE), plan(BASE.replace("window: 5m", "window: 10m")));
  assert.equal(
    refusalLine(d.refused[0]),
    "speed.window: cannot change while the pipeline runs (300000 → 600000): every stored " +
      "window, the lake's completeness and the hourly reconciliation depend on the window " +
      "length; a restart applies it",
  );
  const t = diffPlans(plan(BASE), plan(BASE.replace("s3cret", "n3w")));
  assert.doesNotMatch(refusalLine(t.refused[0]), /s3cret|n3w/);
  assert.match(refusalLine(t.refused[0]), /^api\.token: .*a restart applies it$/);
});

Deno.test("planHash() is of the plan, not the text: comments and spelling keep it, changes move it", () => {
  const a = planHash(plan(BASE));
  assert.match(a, /^[0-9a-f]{64}$/);
  assert.equal(planHash(plan("# header\n" + BASE.replace("window: 5m", "window: 300s"))), a);
  assert.notEqual(planHash(plan(BASE.replace("window: 5m", "window: 10m"))), a);
  // Secrets are masked before hashing: the hash says nothing about them.
  assert.equal(planHash(plan(BASE.replace("s3cret", "other"))), a);
});

Deno.test("metricDefinition() ignores value order, the description and a count's field", () => {
  const m = (extra: string) =>
    plan(`speed:\n  metrics:\n    - { name: m, group_by: app${extra} }\nbatch:\n  metrics: []\n`)
      .speed.metrics[0];
  assert.equal(
    metricDefinition(m(", filter: { in: { app: [A, B] } }")),
    metricDefinition(m(", filter: { in: { app: [B, A] } }, description: x")),
  );
  assert.equal(
    definitionHash(m(", aggregation: count, field: bytes")),
    definitionHash(m(", aggregation: count, field: timestamp")),
  );
  assert.notEqual(
    definitionHash(m(", filter: { in: { app: [A] } }")),
    definitionHash(m(", filter: { not_in: { app: [A] } }")),
  );
});

// ---- the watcher --------------------------------------------------------------

Deno.test("watchFile() reports each changed save once, renames included, and not a touch", async () => {
  const dir = await Deno.makeTempDir({ prefix: "watch_" });
  const file = `${dir}/pipeline.yaml`;
  await Deno.writeTextFile(file, "a: 1\n");
  let n = 0;
  const w = await watchFile(file, () => void n++, {
    debounceMs: 100,
    log: createLogger({ test: "watch" }),
  });
  const settle = () => new Promise((r) => setTimeout(r, 400));
  try {
    await settle();
    await Deno.writeTextFile(file, "a: 2\n");
    await Deno.writeTextFile(file, "a: 3\n");
    await settle();
    assert.equal(n, 1, "two quick writes are one save");
    // An editor's save: a temporary file renamed over the original.
    await Deno.writeTextFile(`${dir}/.pipeline.yaml.swp`, "a: 4\n");
    await Deno.rename(`${dir}/.pipeline.yaml.swp`, file);
    await settle();
    assert.equal(n, 2);
    await Deno.writeTextFile(file, "a: 4\n"); // same text
    await settle();
    assert.equal(n, 2);
    await Deno.writeTextFile(`${dir}/other.yaml`, "b: 1\n");
    await settle();
    assert.equal(n, 2, "other files of the folder are ignored");
  } finally {
    w.close();
    await Deno.remove(dir, { recursive: true });
  }
});
