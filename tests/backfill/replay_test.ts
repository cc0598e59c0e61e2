/**
 * The backfill's exactness argument, checked synchronously on the pure core:
 * a metric added at a switch offset S gets, from a replay of the lake's
 * events below S (only the hour folders from C on, starting with no clock)
 * combined with the live layer's windows from S on (clock carried over),
 * exactly the windows and late-dropped values it would have had declared
 * from the first event, for every window from C on. With late events that
 * are updated and dropped, and a replay resumed half-way.
 */
import assert from "node:assert/strict";
import { combine } from "../../src/core/aggregate.ts";
import { type CompiledMetric, compileMetric, type MetricRow } from "../../src/core/metric.ts";
import {
  type DroppedValue,
  PartitionWindows,
  type WindowDelta,
} from "../../src/core/partition_windows.ts";
import { HOUR_MS, hourStart } from "../../src/core/window.ts";
import type { MetricPlan } from "../../src/config/plan.ts";
import { createRandom } from "../../src/simulator/mod.ts";
import { PartitionReplay, switchFrom } from "../../src/backfill/mod.ts";

const OPTS = { windowMs: 300_000, allowedLatenessMs: 15_000 };
const H0 = Date.UTC(2026, 10, 28, 8);

const OLD: MetricPlan[] = [
  { name: "antenna_bytes_total", groupBy: ["antenna_id"], aggregation: "sum", field: "bytes" },
];
const NEW: MetricPlan[] = [
  {
    name: "messaging_bytes",
    groupBy: ["antenna_id"],
    aggregation: "sum",
    field: "bytes",
    filter: { in: { app: ["SKYPE", "WHATSAPP"] } },
  },
  { name: "devices", groupBy: ["app"], aggregation: "count_distinct", field: "id" },
  { name: "biggest", groupBy: ["app", "antenna_id"], aggregation: "max", field: "bytes" },
];

/** One partition's events over three hours: 10% late by up to 40 s (some past the lateness). */
function events(n: number, seed: number): MetricRow[] {
  const r = createRandom(seed);
  const apps = ["SKYPE", "WHATSAPP", "FACEBOOK", "TELEGRAM"];
  const out: MetricRow[] = [];
  for (let i = 0; i < n; i++) {
    let t = H0 + Math.floor((i * 3 * HOUR_MS) / n);
    if (r.int(10) === 0) t -= r.int(40_000);
    out.push({
      bytes: r.int(10_000),
      timestamp: Math.floor(t / 1000),
      app: apps[r.int(apps.length)],
      id: `d${r.int(50)}`,
      antenna_id: `a${r.int(4)}`,
    });
  }
  return out;
}

type Totals = Map<string, number | Set<string>>;

function fold(into: Totals, metrics: readonly CompiledMetric[], deltas: readonly WindowDelta[]) {
  const agg = new Map(metrics.map((m) => [m.name, m.aggregation]));
  for (const d of deltas) {
    const k = `${d.metric}|${d.windowStart}|${d.key}`;
    const a = agg.get(d.metric)!;
    if (a === "count_distinct") {
      const s = (into.get(k) as Set<string>) ?? new Set<string>();
      for (const m of d.members ?? []) s.add(m);
      into.set(k, s);
    } else {
      const prev = into.get(k) as number | undefined;
      into.set(k, prev === undefined ? d.value! : combine(a, prev, d.value!));
    }
  }
}

function foldDropped(into: Map<string, number>, dropped: readonly DroppedValue[]) {
  for (const d of dropped) {
    const k = `${d.metric}|${d.hourMs}`;
    into.set(k, (into.get(k) ?? 0) + d.value);
  }
}

const plain = (t: Totals, fromMs: number) =>
  [...t].filter(([k]) => Number(k.split("|")[1]) >= fromMs)
    .map(([k, v]) => [k, v instanceof Set ? [...v].sort().join(",") : v] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : 1));

const onlyFrom = (m: Map<string, number>, fromMs: number) =>
  [...m].filter(([k]) => Number(k.split("|")[1]) >= fromMs).sort();

for (
  const c of [
    { name: "the lake's first hour", fromMs: -Infinity, switchAt: 0.7, resumeAt: undefined },
    { name: "a later hour", fromMs: H0 + HOUR_MS, switchAt: 0.8, resumeAt: undefined },
    { name: "a later hour, resumed half-way", fromMs: H0 + HOUR_MS, switchAt: 0.9, resumeAt: 0.5 },
    { name: "the switch hour itself", fromMs: H0 + 2 * HOUR_MS, switchAt: 0.95, resumeAt: 0.3 },
  ]
) {
  Deno.test(`replay below the switch + live from it = declared from the start (from ${c.name})`, () => {
    const evs = events(30_000, 7);
    // The switch lands on an event the live clock drops: a replay or a
    // switch that got the clock wrong would count it.
    const probe = new PartitionWindows(OLD.map(compileMetric), OPTS);
    const lateness = evs.map((e) => probe.add(e));
    let S = Math.floor(evs.length * c.switchAt);
    while (lateness[S] !== "late_dropped") S++;
    const newMetrics = NEW.map(compileMetric);
    const all = [...OLD, ...NEW].map(compileMetric);

    // Declared from the start.
    const ref = new PartitionWindows(all, OPTS);
    ref.addAll(evs);
    const refTotals: Totals = new Map();
    fold(refTotals, all, ref.takeDeltas());
    const refDropped = new Map<string, number>();
    foldDropped(refDropped, ref.takeDropped());

    // Live: the old plan below S, the new one from S with the clock carried over.
    const before = new PartitionWindows(OLD.map(compileMetric), OPTS);
    before.addAll(evs.slice(0, S));
    const after = new PartitionWindows(all, OPTS, before.clockMs);
    after.addAll(evs.slice(S));
    const got: Totals = new Map();
    fold(got, all, after.takeDeltas().filter((d) => newMetrics.some((m) => m.name === d.metric)));
    const gotDropped = new Map<string, number>();
    foldDropped(
      gotDropped,
      after.takeDropped().filter((d) => newMetrics.some((m) => m.name === d.metric)),
    );

    // Backfill: the lake's hour folders from C on, below S, in offset order.
    const lake = evs.slice(0, S).filter((e) =>
      !Number.isFinite(c.fromMs) || hourStart(e.timestamp * 1000) >= c.fromMs
    );
    const range = { fromMs: c.fromMs, untilMs: Infinity };
    const cut = c.resumeAt === undefined ? lake.length : Math.floor(lake.length * c.resumeAt);
    const first = new PartitionReplay(newMetrics, OPTS, range);
    for (const e of lake.slice(0, cut)) first.add(e);
    let taken = first.take();
    fold(got, newMetrics, taken.deltas);
    foldDropped(gotDropped, taken.dropped);
    // A crash here: the next replay resumes from the recorded clock.
    const second = new PartitionReplay(newMetrics, OPTS, range, first.clockMs);
    for (const e of lake.slice(cut)) second.add(e);
    taken = second.take();
    fold(got, newMetrics, taken.deltas);
    foldDropped(gotDropped, taken.dropped);

    const want: Totals = new Map(
      [...refTotals].filter(([k]) => newMetrics.some((m) => k.startsWith(`${m.name}|`))),
    );
    assert.ok(first.counts.late_dropped + second.counts.late_dropped > 0, "some events dropped");
    assert.ok(ref.takeDeltas().length === 0);
    assert.deepEqual(plain(got, c.fromMs), plain(want, c.fromMs));
    assert.deepEqual(
      onlyFrom(gotDropped, c.fromMs),
      onlyFrom(
        new Map(
          [...refDropped].filter(([k]) => newMetrics.some((m) => k.startsWith(`${m.name}|`))),
        ),
        c.fromMs,
      ),
    );
  });
}

Deno.test("PartitionReplay.take() keeps only windows and hours in range", () => {
  const m = [compileMetric(OLD[0])];
  const r = new PartitionReplay(m, OPTS, { fromMs: H0 + HOUR_MS, untilMs: H0 + 2 * HOUR_MS });
  for (const e of events(3_000, 3)) r.add(e);
  const { deltas } = r.take();
  assert.ok(deltas.length > 0);
  assert.ok(deltas.every((d) => d.windowStart >= H0 + HOUR_MS && d.windowStart < H0 + 2 * HOUR_MS));
});

Deno.test("switchFrom(): every hour, none, N hours back, or earlier when the clock lags", () => {
  const now = Date.UTC(2026, 10, 28, 10, 20);
  const o = { nowMs: now, clockMs: now - 5_000, windowMs: 300_000, allowedLatenessMs: 15_000 };
  assert.equal(switchFrom(o), -Infinity);
  assert.equal(switchFrom({ ...o, backfillHours: 0 }), undefined);
  assert.equal(switchFrom({ ...o, backfillHours: 2 }), Date.UTC(2026, 10, 28, 8));
  // Catching up a backlog: the live layer will still write windows of 05:xx.
  const lagging = { ...o, backfillHours: 2, clockMs: Date.UTC(2026, 10, 28, 5, 2) };
  assert.equal(switchFrom(lagging), Date.UTC(2026, 10, 28, 4));
  assert.equal(
    switchFrom({ ...o, backfillHours: 2, clockMs: -Infinity }),
    Date.UTC(2026, 10, 28, 8),
  );
});
