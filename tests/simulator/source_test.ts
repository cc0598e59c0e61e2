/**
 * The in-process simulator source as the speed layer sees it: consecutive
 * offsets keyed like Kafka, live pacing, pause and backpressure, and, over a
 * real database (PostgreSQL, and PGlite for the store), replays like a topic:
 * the same messages for offsets asked again after a restart, downtime turned
 * into a backlog, a backlog beyond `max_backlog` skipped and logged.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import {
  createSimulatorSource,
  type SimulatorSource,
} from "../../src/simulator/simulator_source.ts";
import {
  createMemoryTimelineStore,
  type TimelineStore,
} from "../../src/simulator/timeline_store.ts";
import { createDbTimelineStore } from "../../src/simulator/db_timeline_store.ts";
import { keyPartition } from "../../src/simulator/murmur2.ts";
import { MESSAGE_SCHEME } from "../../src/simulator/message_at.ts";
import type { SimulatorPlan } from "../../src/config/plan.ts";
import type { SourceBatch } from "../../src/speed/mod.ts";
import type { Logger } from "../../src/log.ts";
import { DEFAULT_APPS } from "../../src/simulator/ids.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import type { Db } from "../../src/db/db.ts";
import { freshDatabase } from "../_support/services.ts";
import { eventSourceCases } from "../_support/event_source_cases.ts";

const PLAN: SimulatorPlan = {
  antennas: 5,
  devices: 20,
  apps: DEFAULT_APPS,
  rate: 0,
  seed: 42,
  lateShare: 0.05,
  malformedShare: 0.01,
  maxLatenessMs: 30_000,
  maxBacklogMs: 600_000,
  historyMs: 0,
};
const decoder = new TextDecoder();

/** What a consumer saw: every message by "partition:offset", and the batches. */
interface Seen {
  readonly batches: SourceBatch[];
  readonly messages: Map<string, string>;
  readonly assigned: number[][];
  readonly revoked: number[][];
  /** Next offset after the last delivered message, per partition. */
  readonly next: Map<number, number>;
  /** Two batches of one partition were in onBatch at once. */
  overlapped: boolean;
}

interface Run {
  readonly source: SimulatorSource;
  readonly seen: Seen;
  /** Resolves once `until` holds. */
  readonly enough: Promise<void>;
}

/** Starts a source with a consumer that records what it gets (`holdMs` per batch). */
async function run(opts: {
  timeline?: TimelineStore;
  plan?: Partial<SimulatorPlan>;
  starts?: Map<number, number>;
  until?: (seen: Seen) => boolean;
  holdMs?: number;
  partitions?: number;
  now?: () => number;
  maxBatch?: number;
  log?: Logger;
}): Promise<Run> {
  const seen: Seen = {
    batches: [],
    messages: new Map(),
    assigned: [],
    revoked: [],
    next: new Map(),
    overlapped: false,
  };
  const busy = new Set<number>();
  const enough = Promise.withResolvers<void>();
  const source = createSimulatorSource({
    simulator: { ...PLAN, ...opts.plan },
    timeline: opts.timeline ?? createMemoryTimelineStore(),
    partitions: opts.partitions ?? 3,
    tickMs: 20,
    now: opts.now,
    maxBatch: opts.maxBatch,
    log: opts.log,
  });
  await source.start({
    async onBatch(b) {
      if (busy.has(b.partition)) seen.overlapped = true;
      busy.add(b.partition);
      if (opts.holdMs) await delay(opts.holdMs);
      seen.batches.push(b);
      for (const m of b.messages) {
        seen.messages.set(
          `${m.partition}:${m.offset}`,
          decoder.decode(m.key!) + " " + decoder.decode(m.value!),
        );
      }
      seen.next.set(b.partition, b.messages.at(-1)!.offset + 1);
      busy.delete(b.partition);
      if (opts.until?.(seen)) enough.resolve();
    },
    onAssign(p) {
      seen.assigned.push([...p]);
      return Promise.resolve(opts.starts);
    },
    onRevoke(p) {
      seen.revoked.push([...p]);
      return Promise.resolve();
    },
  });
  return { source, seen, enough: enough.promise };
}

const total = (s: Seen) => s.batches.reduce((n, b) => n + b.messages.length, 0);

async function collect(opts: Parameters<typeof run>[0] & { until: (s: Seen) => boolean }) {
  const r = await run(opts);
  await r.enough;
  await r.source.stop();
  return r.seen;
}

Deno.test("createSimulatorSource() delivers consecutive offsets per partition, keyed like Kafka", async () => {
  const seen = await collect({ until: (s) => total(s) >= 12_000 });
  assert.deepEqual(seen.assigned, [[0, 1, 2]]);
  assert.deepEqual(seen.revoked, [[0, 1, 2]]);
  const next = new Map<number, number>();
  for (const b of seen.batches) {
    assert.ok(b.messages.length > 0);
    assert.ok(b.highWatermark >= b.messages.at(-1)!.offset + 1);
    for (const m of b.messages) {
      assert.equal(m.partition, b.partition);
      assert.equal(m.offset, next.get(b.partition) ?? 0);
      next.set(b.partition, m.offset + 1);
      assert.equal(keyPartition(m.key!, 3), m.partition);
    }
  }
  assert.equal(next.size, 3, "all partitions get events");
});

Deno.test("createSimulatorSource() continues numbering from the offsets onAssign returns", async () => {
  const starts = new Map([[0, 1000], [1, 5], [2, 77]]);
  const seen = await collect({ starts, until: (s) => total(s) >= 12_000 });
  for (const p of [0, 1, 2]) {
    const first = seen.batches.find((b) => b.partition === p)!;
    assert.equal(first.messages[0].offset, starts.get(p));
  }
});

Deno.test("createSimulatorSource() paces live generation at the plan's rate", async () => {
  const t0 = performance.now();
  const seen = await collect({ plan: { rate: 2_000 }, until: (s) => total(s) >= 1_000 });
  const elapsed = performance.now() - t0;
  // 1 000 events at 2 000/s take about half a second, not a burst.
  assert.ok(elapsed >= 350, `took ${elapsed} ms`);
  assert.ok(total(seen) >= 1_000);
});

Deno.test("createSimulatorSource() records commits and honours pause, resume and backpressure", async () => {
  const r = await run({ partitions: 2, holdMs: 2, maxBatch: 500 });
  await delay(100);
  r.source.pause();
  await delay(30);
  const atPause = total(r.seen);
  await delay(60);
  assert.equal(total(r.seen), atPause, "nothing delivered while paused");
  r.source.resume();
  await delay(60);
  assert.ok(total(r.seen) > atPause, "delivery resumes");
  await r.source.commit(new Map([[0, 10], [1, 20], [7, 1]]));
  assert.deepEqual(r.source.committed(), new Map([[0, 10], [1, 20]]));
  await r.source.stop();
  assert.equal(r.seen.overlapped, false, "a partition's next batch waits for onBatch");
  assert.ok(r.seen.batches.every((b) => b.messages.length <= 500));
  assert.equal(r.source.kind, "simulator");
});

Deno.test("createSimulatorSource() reports each partition's issued end and its lag by the wall clock", async () => {
  const T = Date.now();
  let t = T;
  // 2 000/s over 20 devices, 6/7/7 of them keyed to partitions 0/1/2: 600, 700, 700 per second.
  const r = await run({ plan: { rate: 2_000 }, now: () => t });
  t = T + 1_000;
  while (total(r.seen) < 2_003) await delay(10);
  assert.deepEqual(await r.source.endOffsets(), new Map([[0, 601], [1, 701], [2, 701]]));
  assert.deepEqual(await r.source.lag(), new Map([[0, 0], [1, 0], [2, 0]]));
  r.source.pause();
  await delay(50);
  t = T + 2_000;
  assert.deepEqual(await r.source.endOffsets(), new Map([[0, 1201], [1, 1401], [2, 1401]]));
  assert.deepEqual(await r.source.lag(), new Map([[0, 600], [1, 700], [2, 700]]));
  await r.source.stop();
});

// ---- over a database ---------------------------------------------------------

async function withDb(name: string, fn: (db: Db) => Promise<void>): Promise<void> {
  const fresh = await freshDatabase(name);
  const db = await openDb({ url: fresh.url });
  try {
    await migrate(db);
    await fn(db);
  } finally {
    await db.close();
    await fresh.drop();
  }
}

/** A recording logger: every line as (level, msg, fields). */
function recorder(): Logger & {
  lines: { level: string; msg: string; fields?: Record<string, unknown> }[];
} {
  const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    void lines.push({ level, msg, fields });
  const self = {
    lines,
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => self,
  };
  return self;
}

function assertSameWhereBoth(a: Map<string, string>, b: Map<string, string>, atLeast: number) {
  let both = 0;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined) continue;
    both++;
    assert.equal(w, v, `message ${k}`);
  }
  assert.ok(both >= atLeast, `${both} messages seen by both runs`);
}

for (const backend of ["postgres", "pglite"] as const) {
  Deno.test(`createDbTimelineStore() records segments and issued ends (${backend})`, async () => {
    const test = async (db: Db) => {
      const store = createDbTimelineStore(db, "devices");
      const other = createDbTimelineStore(db, "other");
      const params = {
        scheme: MESSAGE_SCHEME,
        seed: 1,
        partitions: 3,
        devices: 20,
        antennas: 5,
        apps: ['A "quoted" app', "B"],
        lateShare: 0.05,
        malformedShare: 0.01,
        maxLatenessMs: 30_000,
        maxPayloadBytes: 65_536,
      };
      const s0 = { fromOffset: 0, originMs: 1_764_000_000_123, rate: 1 / 3, params };
      await store.record(new Map([[0, s0], [2, { ...s0, rate: 0 }]]));
      await store.record(new Map([[0, { ...s0, fromOffset: 500, rate: 33.3 }]]));
      await store.record(new Map([[0, { ...s0, fromOffset: 500, rate: 40 }]])); // replaces
      await store.reserve(new Map([[0, 900], [1, 10]]));
      await store.reserve(new Map([[0, 700]])); // lower: kept at 900
      const got = await store.load([0, 1, 2]);
      assert.deepEqual(got.get(0), {
        segments: [s0, { ...s0, fromOffset: 500, rate: 40 }],
        issuedEnd: 900,
      });
      assert.deepEqual(got.get(1), { segments: [], issuedEnd: 10 });
      assert.deepEqual(got.get(2), { segments: [{ ...s0, rate: 0 }], issuedEnd: 0 });
      assert.deepEqual((await other.load([0])).get(0), { segments: [], issuedEnd: 0 });
    };
    if (backend === "postgres") return await withDb("sim_store", test);
    const db = await openDb({});
    try {
      await migrate(db);
      await test(db);
    } finally {
      await db.close();
    }
  });
}

Deno.test("createSimulatorSource() restarted over the same database gives the same messages for offsets asked again", async () => {
  await withDb("sim_replay", async (db) => {
    const timeline = createDbTimelineStore(db, "devices");
    const plan = { rate: 3_000 };
    const first = await collect({ timeline, plan, until: (s) => total(s) >= 3_000 });
    await delay(300);
    // The speed layer resumes below what it saw, e.g. from its lake-durable offsets.
    const starts = new Map([[0, 0], [1, 100], [2, first.next.get(2)! - 1]]);
    const again = await collect({
      timeline,
      plan,
      starts,
      until: (s) => [0, 1, 2].every((p) => (s.next.get(p) ?? 0) > first.next.get(p)!),
    });
    const overlap = (a: Seen, from: Map<number, number>) =>
      [0, 1, 2].reduce((n, p) => n + a.next.get(p)! - (from.get(p) ?? 0), 0);
    assertSameWhereBoth(first.messages, again.messages, overlap(first, starts));
    for (const p of [0, 1, 2]) {
      assert.equal(again.batches.find((b) => b.partition === p)!.messages[0].offset, starts.get(p));
    }
    // New parameters apply after what was issued: earlier offsets keep their messages.
    const changed = await collect({
      timeline,
      plan: { ...plan, lateShare: 0.5, seed: 9 },
      until: (s) => [0, 1, 2].every((p) => (s.next.get(p) ?? 0) > again.next.get(p)!),
    });
    assertSameWhereBoth(again.messages, changed.messages, overlap(again, starts));
    const segs = await db.query<{ partition: number; n: number }>(
      `SELECT "partition", count(*)::int AS n FROM simulator_timeline GROUP BY 1 ORDER BY 1`,
    );
    assert.deepEqual(segs, [0, 1, 2].map((p) => ({ partition: p, n: 2 })));
  });
});

Deno.test("createSimulatorSource() turns D seconds of downtime into D × rate of backlog, delivered as fast as it is taken", async () => {
  await withDb("sim_backlog", async (db) => {
    const timeline = createDbTimelineStore(db, "devices");
    let skew = 0;
    const now = () => Date.now() + skew;
    const plan = { rate: 1_000, lateShare: 0, malformedShare: 0 };
    const first = await collect({ timeline, plan, now, until: (s) => total(s) >= 500 });
    const stoppedAt = now();
    skew += 60_000; // down for a minute
    const resumedAt = now();
    const t0 = performance.now();
    const r = await run({ timeline, plan, now, starts: first.next, holdMs: 1, maxBatch: 1_000 });
    const ends = await r.source.endOffsets();
    const backlog = [0, 1, 2].reduce((n, p) => n + ends.get(p)! - first.next.get(p)!, 0);
    assert.ok(Math.abs(backlog - 60_000) < 1_500, `backlog ${backlog}`);
    while ([0, 1, 2].some((p) => (r.seen.next.get(p) ?? 0) < ends.get(p)!)) await delay(20);
    const ms = performance.now() - t0;
    await r.source.stop();
    assert.ok(ms < 15_000, `caught up on ${backlog} messages in ${ms} ms`);
    assert.equal(r.seen.overlapped, false);
    assert.ok(r.seen.batches.every((b) => b.messages.length <= 1_000));
    // Every second of the downtime has its events (event time = issue time here).
    const seconds = new Set(
      [...r.seen.messages.values()].map((m) => JSON.parse(m.slice(m.indexOf(" ") + 1)).timestamp),
    );
    for (let s = Math.ceil(stoppedAt / 1000); s < Math.floor(resumedAt / 1000); s++) {
      assert.ok(seconds.has(s), `events of ${new Date(s * 1000).toISOString()}`);
    }
  });
});

Deno.test("createSimulatorSource() skips a backlog longer than max_backlog, logging it once", async () => {
  await withDb("sim_cap", async (db) => {
    const timeline = createDbTimelineStore(db, "devices");
    let skew = 0;
    const now = () => Date.now() + skew;
    const plan = { rate: 1_000, maxBacklogMs: 10_000 };
    const first = await collect({ timeline, plan, now, until: (s) => total(s) >= 500 });
    skew += 3_600_000; // down for an hour
    const log = recorder();
    const r = await run({ timeline, plan, now, log, starts: new Map([[0, 0], [1, 0], [2, 0]]) });
    const ends = await r.source.endOffsets();
    const issued = await timeline.load([0, 1, 2]);
    const skips = log.lines.filter((l) => /max_backlog/.test(l.msg));
    assert.equal(skips.length, 1, JSON.stringify(log.lines));
    assert.equal(skips[0].level, "warn");
    const f = skips[0].fields!;
    // An hour at 1 000/s, less the 10 s kept and the few seconds reserved ahead before the stop.
    const events = f.skipped_events as number, seconds = f.skipped_seconds as number;
    assert.ok(events > 3_580_000 && events < 3_591_000, JSON.stringify(f));
    assert.ok(seconds >= 3_580 && seconds <= 3_591, JSON.stringify(f));
    let backlog = 0;
    for (const p of [0, 1, 2]) {
      const t = issued.get(p)!;
      assert.equal(t.segments.length, 2);
      assert.ok(t.segments[1].fromOffset >= first.next.get(p)!);
      backlog += ends.get(p)! - t.segments[1].fromOffset;
    }
    assert.ok(Math.abs(backlog - 10_000) < 1_500, `backlog ${backlog}`);
    // Replayed from 0: what was issued before the gap is unchanged.
    while ([0, 1, 2].some((p) => (r.seen.next.get(p) ?? 0) < first.next.get(p)!)) await delay(20);
    await r.source.stop();
    assertSameWhereBoth(first.messages, r.seen.messages, 500);
  });
});

eventSourceCases("createSimulatorSource()", () => {
  const timeline = createMemoryTimelineStore();
  return Promise.resolve({
    partitions: 3,
    open: () =>
      Promise.resolve(
        createSimulatorSource({
          simulator: { ...PLAN, rate: 2_000 },
          timeline,
          partitions: 3,
          tickMs: 20,
        }),
      ),
    // Generated as it is read.
    fill: () => Promise.resolve(),
    close: () => Promise.resolve(),
  });
});
