import assert from "node:assert/strict";
import type { MetricPlan, SchemaPlan } from "../../src/config/plan.ts";
import {
  classify,
  combine,
  combineSql,
  compileMetric,
  foldCaseSql,
  GroupAccumulator,
  isAdditive,
  type MetricFields,
  metricFields,
  type MetricRow,
  partialValue,
  PartitionWindows,
  quotaBreaches,
  quotasByEmail,
  validateMessage,
  windowStart,
} from "../../src/core/mod.ts";
import { aggregateRows } from "../_support/aggregate_rows.ts";

const schema: SchemaPlan = {
  maxPayloadBytes: 512,
  minTimestampMs: Date.UTC(2000, 0, 1),
  maxFutureMs: 3_600_000,
  maxAppLength: 64,
};
const NOW = Date.UTC(2026, 10, 28, 12);
const enc = (s: string) => new TextEncoder().encode(s);
const good = {
  bytes: 9082,
  timestamp: 1600545287,
  app: "SKYPE",
  id: "00000000-0000-0000-0000-000000000001",
  antenna_id: "00000000-0000-0000-0001-000000000000",
};

Deno.test("validateMessage() accepts the original event format", () => {
  const r = validateMessage(enc(JSON.stringify(good)), schema, NOW);
  assert.deepEqual(r, { ok: true, event: good });
});

const bad: [string, string, string][] = [
  ["not JSON", "{bytes:", "not_json"],
  ["not UTF-8", "\xff", "not_json"],
  ["an array", "[1,2]", "not_object"],
  ["a number", "42", "not_object"],
  ["no timestamp", JSON.stringify({ ...good, timestamp: undefined }), "missing_field"],
  ["a null app", JSON.stringify({ ...good, app: null }), "missing_field"],
  ["bytes as a string", JSON.stringify({ ...good, bytes: "12" }), "wrong_type"],
  ["id as a number", JSON.stringify({ ...good, id: 7 }), "wrong_type"],
  ["an empty id", JSON.stringify({ ...good, id: " " }), "invalid_value"],
  ["negative bytes", JSON.stringify({ ...good, bytes: -1 }), "negative_bytes"],
  ["fractional bytes", JSON.stringify({ ...good, bytes: 1.5 }), "non_integer_bytes"],
  [
    "bytes above 2^53-1",
    JSON.stringify(good).replace('"bytes":9082', '"bytes":9007199254740993'),
    "bytes_too_large",
  ],
  [
    "a timestamp before 2000",
    JSON.stringify({ ...good, timestamp: 946684799 }),
    "timestamp_too_old",
  ],
  [
    "a timestamp two hours ahead",
    JSON.stringify({ ...good, timestamp: NOW / 1000 + 7200 }),
    "timestamp_in_future",
  ],
  ["a fractional timestamp", JSON.stringify({ ...good, timestamp: 1600545287.5 }), "wrong_type"],
  ["an oversized payload", JSON.stringify({ ...good, app: "X".repeat(600) }), "oversized"],
];

for (const [what, text, reason] of bad) {
  Deno.test(`validateMessage() rejects ${what} as ${reason}`, () => {
    const raw = what === "not UTF-8" ? new Uint8Array([0x7b, 0xff, 0x7d]) : enc(text);
    const r = validateMessage(raw, schema, NOW);
    assert.equal(r.ok, false);
    if (!r.ok) {
      assert.equal(r.reason, reason);
      assert.ok(r.detail.length > 0);
    }
  });
}

Deno.test("validateMessage() accepts bytes of exactly 2^53-1", () => {
  const text = JSON.stringify(good).replace('"bytes":9082', '"bytes":9007199254740991');
  assert.equal(validateMessage(enc(text), schema, NOW).ok, true);
});

Deno.test("validateMessage() rejects a tombstone (null value)", () => {
  const r = validateMessage(null, schema, NOW);
  assert.equal(r.ok, false);
});

const row = (over: Partial<MetricRow> = {}): MetricRow => ({ ...good, ...over });
const metric = (over: Partial<MetricPlan> = {}): MetricPlan => ({
  name: "m",
  groupBy: ["antenna_id"],
  aggregation: "sum",
  field: "bytes",
  ...over,
});

Deno.test("compileMetric() keys by one or several fields", () => {
  assert.equal(compileMetric(metric({ groupBy: ["app"] })).key(row()), "SKYPE");
  assert.equal(
    compileMetric(metric({ groupBy: ["antenna_id", "app"] })).key(row()),
    `${good.antenna_id}|SKYPE`,
  );
});

Deno.test("compileMetric() applies in and not_in filters", () => {
  const m = compileMetric(metric({ filter: { in: { app: ["SKYPE", "TELEGRAM"] } } }));
  assert.equal(m.accepts(row()), true);
  assert.equal(m.accepts(row({ app: "FACEBOOK" })), false);
  const n = compileMetric(metric({ filter: { notIn: { app: ["SKYPE"] }, in: { bytes: [5] } } }));
  assert.equal(n.accepts(row({ app: "X", bytes: 5 })), true);
  assert.equal(n.accepts(row({ app: "SKYPE", bytes: 5 })), false);
  assert.equal(n.accepts(row({ app: "X", bytes: 6 })), false);
});

const fieldCases: [string, Partial<MetricPlan>, MetricFields][] = [
  ["gives a sum's key fields and summed field", {}, {
    key: ["antenna_id"],
    filter: [],
    value: "bytes",
  }],
  ["gives a count no value field", { aggregation: "count", groupBy: ["email", "app"] }, {
    key: ["email", "app"],
    filter: [],
    value: undefined,
  }],
  ["gives count_distinct the counted field as its value", {
    aggregation: "count_distinct",
    field: "id",
  }, {
    key: ["antenna_id"],
    filter: [],
    value: "id",
  }],
  [
    "lists every field a filter tests once, in and not_in together",
    { filter: { in: { app: ["SKYPE"], bytes: [5] }, notIn: { app: ["X"], name: ["n"] } } },
    { key: ["antenna_id"], filter: ["app", "bytes", "name"], value: "bytes" },
  ],
];
for (const [what, over, expected] of fieldCases) {
  Deno.test(`metricFields() ${what}`, () => {
    assert.deepEqual(metricFields(metric(over)), expected);
  });
}

Deno.test("combine() adds sums and counts and picks min and max", () => {
  assert.equal(combine("sum", 2, 3), 5);
  assert.equal(combine("count", 2, 3), 5);
  assert.equal(combine("min", 2, 3), 2);
  assert.equal(combine("max", 2, 3), 3);
});

Deno.test("combineSql() merges the stored value with the incoming one by the same rule", () => {
  assert.equal(combineSql("sum"), "target.value + EXCLUDED.value");
  assert.equal(combineSql("count"), "target.value + EXCLUDED.value");
  assert.equal(combineSql("min"), "LEAST(target.value, EXCLUDED.value)");
  assert.equal(combineSql("max"), "GREATEST(target.value, EXCLUDED.value)");
});

Deno.test("partialValue() takes the part of a partial its aggregation combines", () => {
  const p = { sum: 10, count: 3, min: 1, max: 7 };
  assert.deepEqual(
    (["sum", "count", "min", "max"] as const).map((a) => partialValue(a, p)),
    [10, 3, 1, 7],
  );
});

Deno.test("isAdditive() holds for sum and count only", () => {
  assert.deepEqual(
    (["sum", "count", "min", "max", "count_distinct"] as const).filter(isAdditive),
    ["sum", "count"],
  );
});

Deno.test("foldCaseSql() folds by the named aggregation, a sum for any other name", () => {
  assert.equal(
    foldCaseSql("$5::text", "value"),
    "CASE $5::text WHEN 'min' THEN min(value) WHEN 'max' THEN max(value)" +
      " WHEN 'count_distinct' THEN max(value) ELSE sum(value) END",
  );
});

Deno.test("GroupAccumulator.addPartial() equals adding the rows one by one", () => {
  const plans: MetricPlan[] = [
    metric({ name: "s" }),
    metric({ name: "c", aggregation: "count" }),
    metric({ name: "lo", aggregation: "min" }),
    metric({ name: "hi", aggregation: "max" }),
    metric({ name: "d", aggregation: "count_distinct", field: "id" }),
  ];
  // Two groups of rows equal in every field but bytes, for two antennas.
  const groups = [
    [row({ bytes: 10 }), row({ bytes: 30 }), row({ bytes: 20 })],
    [row({ bytes: 7, antenna_id: "b" })],
    [row({ bytes: 40, id: "other" })],
  ];
  for (const plan of plans) {
    const m = compileMetric(plan);
    const byRow = new GroupAccumulator(m);
    const byPartial = new GroupAccumulator(m);
    for (const rows of groups) {
      for (const r of rows) byRow.add(r);
      const values = rows.map((r) => r.bytes);
      byPartial.addPartial(rows[0], {
        sum: values.reduce((a, b) => a + b, 0),
        count: values.length,
        min: Math.min(...values),
        max: Math.max(...values),
      });
    }
    byPartial.addPartial(row({ antenna_id: "empty" }), { sum: 0, count: 0, min: 0, max: 0 });
    assert.deepEqual(byPartial.results(), byRow.results(), plan.name);
  }
});

Deno.test("windowStart() aligns windows to the epoch", () => {
  assert.equal(windowStart(Date.UTC(2026, 0, 1, 10, 7, 30), 300_000), Date.UTC(2026, 0, 1, 10, 5));
  assert.equal(windowStart(Date.UTC(2026, 0, 1, 10, 5), 300_000), Date.UTC(2026, 0, 1, 10, 5));
});

Deno.test("classify() separates on-time, late-updated and late-dropped events", () => {
  const W = 300_000, L = 15_000, s = 0;
  assert.equal(classify(s, W, L, W - 1), "on_time");
  assert.equal(classify(s, W, L, W), "late_updated");
  assert.equal(classify(s, W, L, W + L - 1), "late_updated");
  assert.equal(classify(s, W, L, W + L), "late_dropped");
});

Deno.test("aggregateRows() computes every aggregation per bucket", () => {
  const metrics = [
    compileMetric(metric({ name: "s" })),
    compileMetric(metric({ name: "c", aggregation: "count" })),
    compileMetric(metric({ name: "lo", aggregation: "min" })),
    compileMetric(metric({ name: "hi", aggregation: "max" })),
    compileMetric(metric({ name: "d", aggregation: "count_distinct", field: "id" })),
  ];
  const t0 = 1_600_000_200; // seconds, inside one 5-minute window
  const rows = [
    row({ timestamp: t0, bytes: 10, id: "a" }),
    row({ timestamp: t0 + 1, bytes: 30, id: "b" }),
    row({ timestamp: t0 + 2, bytes: 20, id: "a" }),
    row({ timestamp: t0 + 400, bytes: 5, id: "a" }),
  ];
  const out = aggregateRows(metrics, rows, 300_000);
  const w0 = windowStart(t0 * 1000, 300_000);
  const w1 = windowStart((t0 + 400) * 1000, 300_000);
  const at = (m: string, w: number) => out.get(m)!.get(w)!.get(good.antenna_id);
  assert.deepEqual([at("s", w0), at("c", w0), at("lo", w0), at("hi", w0), at("d", w0)], [
    60,
    3,
    10,
    30,
    2,
  ]);
  assert.deepEqual([at("s", w1), at("d", w1)], [5, 1]);
});

Deno.test("PartitionWindows deltas, lateness and the restored clock", () => {
  const W = 300_000, L = 15_000;
  const pw = new PartitionWindows([compileMetric(metric())], {
    windowMs: W,
    allowedLatenessMs: L,
  });
  const base = 1_600_000_200; // epoch seconds
  const w = windowStart(base * 1000, W);
  const end = (w + W) / 1000;
  assert.equal(pw.add(row({ timestamp: base, bytes: 1 })), "on_time");
  // clock moves to end + L: watermark == end, the window is written
  assert.equal(pw.add(row({ timestamp: end + L / 1000, bytes: 2 })), "on_time");
  assert.equal(pw.watermarkMs, w + W);
  assert.equal(pw.add(row({ timestamp: base, bytes: 4 })), "late_updated");
  // clock moves past end + 2L: the first window is closed for good
  assert.equal(pw.add(row({ timestamp: end + (2 * L) / 1000, bytes: 8 })), "on_time");
  assert.equal(pw.add(row({ timestamp: base, bytes: 16 })), "late_dropped");
  const deltas = pw.takeDeltas();
  const first = deltas.find((d) => d.windowStart === w)!;
  assert.equal(first.value, 5);
  assert.equal(pw.takeDeltas().length, 0, "deltas are taken once");
  // a restored clock keeps the same decisions after a restart
  const restored = new PartitionWindows([compileMetric(metric())], {
    windowMs: W,
    allowedLatenessMs: L,
  }, pw.clockMs);
  assert.equal(restored.add(row({ timestamp: base, bytes: 16 })), "late_dropped");
});

Deno.test("PartitionWindows.takeDropped() sums what late-dropped events add to additive metrics, per hour", () => {
  const W = 300_000, L = 15_000;
  const metrics = [
    metric({ name: "s" }),
    metric({ name: "c", aggregation: "count" }),
    metric({ name: "skype", filter: { in: { app: ["SKYPE"] } } }),
    metric({ name: "mx", aggregation: "max" }),
  ].map(compileMetric);
  const pw = new PartitionWindows(metrics, { windowMs: W, allowedLatenessMs: L });
  const hour = Date.UTC(2026, 10, 28, 10) / 1000;
  pw.add(row({ timestamp: hour + 3_600 + 60 })); // the clock is in the next hour
  assert.deepEqual(pw.takeDropped(), [], "nothing dropped yet");
  assert.equal(pw.add(row({ timestamp: hour + 10, bytes: 7 })), "late_dropped");
  assert.equal(pw.add(row({ timestamp: hour + 20, bytes: 5, app: "WHATSAPP" })), "late_dropped");
  const byMetric = Object.fromEntries(pw.takeDropped().map((d) => [d.metric, d]));
  // max is not additive: its difference cannot be explained by a sum.
  assert.deepEqual(Object.keys(byMetric).sort(), ["c", "s", "skype"]);
  assert.deepEqual(byMetric.s, { metric: "s", hourMs: hour * 1000, value: 12, events: 2 });
  assert.deepEqual(byMetric.c, { metric: "c", hourMs: hour * 1000, value: 2, events: 2 });
  assert.deepEqual(byMetric.skype, { metric: "skype", hourMs: hour * 1000, value: 7, events: 1 });
  assert.deepEqual(pw.takeDropped(), [], "taken once");
});

Deno.test("PartitionWindows.closeIdle() writes the newest open window", () => {
  const W = 300_000, L = 15_000;
  const pw = new PartitionWindows([compileMetric(metric())], { windowMs: W, allowedLatenessMs: L });
  assert.equal(pw.closeIdle(), false, "nothing open yet");
  const t = 1_600_000_100;
  pw.add(row({ timestamp: t }));
  assert.ok(pw.watermarkMs < windowStart(t * 1000, W) + W);
  assert.equal(pw.closeIdle(), true);
  assert.equal(pw.watermarkMs, windowStart(t * 1000, W) + W);
  assert.equal(pw.closeIdle(), false, "already closed");
});

Deno.test("quotaBreaches() reports usage strictly above quota", () => {
  const quotas = quotasByEmail([
    { email: "a@x", quota: 100 },
    { email: "b@x", quota: 100 },
    { email: "b@x", quota: 50 },
  ]);
  const usage = new Map([["a@x", 100], ["b@x", 101], ["c@x", 1e9]]);
  assert.deepEqual(quotaBreaches(usage, quotas), [{ email: "b@x", usage: 101, quota: 100 }]);
});
