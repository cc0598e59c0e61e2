/**
 * SpeedPartition (src/speed/partition.ts), synchronously: what a batch of
 * messages does to a partition, what a flush takes and what it wrote, what
 * may be committed, when consumption waits, which hours are due for
 * compaction, and idleness — no Kafka, no PostgreSQL.
 */
import assert from "node:assert/strict";
import type { SchemaPlan } from "../../src/config/plan.ts";
import type { SourcedEvent } from "../../src/core/event.ts";
import { compileMetric } from "../../src/core/metric.ts";
import type { SourceMessage } from "../../src/speed/mod.ts";
import type { FlushParticipant } from "../../src/speed/participant.ts";
import { SpeedPartition } from "../../src/speed/partition.ts";
import type { Progress } from "../../src/speed/sink.ts";

const W = 60_000;
const L = 5_000;
const HOUR = 3_600_000;
const H = Date.UTC(2026, 10, 28, 10);
const NOW = H + 2 * HOUR;
const schema: SchemaPlan = {
  maxPayloadBytes: 4096,
  minTimestampMs: Date.UTC(2000, 0, 1),
  maxFutureMs: HOUR,
  maxAppLength: 64,
};
const metrics = [
  compileMetric({ name: "bytes_by_app", groupBy: ["app"], aggregation: "sum", field: "bytes" }),
];
const enc = new TextEncoder();

/** A message at `offset`: an event at `tMs` of `bytes`, or a malformed one. */
function msg(offset: number, tMs: number | "bad", bytes = 10, app = "A"): SourceMessage {
  const value = tMs === "bad"
    ? enc.encode("{not json")
    : enc.encode(JSON.stringify({ bytes, timestamp: tMs / 1000, app, id: "d1", antenna_id: "a1" }));
  return { partition: 0, offset, key: null, value };
}

function partition(progress?: Progress) {
  return new SpeedPartition(0, metrics, { windowMs: W, allowedLatenessMs: L }, progress, NOW);
}

/** A participant that records what it is shown and hands it back once per take. */
function recorder(): FlushParticipant & { seen: number[] } {
  let pending: number[] = [];
  const seen: number[] = [];
  return {
    name: "recorder",
    seen,
    event(e: SourcedEvent) {
      seen.push(e.offset);
      pending.push(e.offset);
    },
    take() {
      if (pending.length === 0) return undefined;
      const offsets = pending;
      pending = [];
      return { write: () => Promise.resolve(), committed: () => void offsets };
    },
  };
}

const ctx = (participants: FlushParticipant[] = []) => ({ schema, nowMs: NOW, participants });

Deno.test("SpeedPartition.ingest() validates, dead-letters and skips what this session saw", () => {
  const p = partition();
  const r = p.ingest([msg(0, H + 1_000), msg(1, "bad"), msg(2, H + 2_000, 5)], 10, ctx());
  assert.deepEqual(r.events.map((e) => e.offset), [0, 2]);
  assert.equal(r.consumed, 3);
  assert.equal(r.valid, 2);
  assert.deepEqual(r.rejected, ["not_json"]);
  assert.equal(p.next, 3);
  assert.equal(p.lag, 7);
  // Delivered again: nothing new.
  const again = p.ingest([msg(1, "bad"), msg(2, H + 2_000, 5)], 10, ctx());
  assert.equal(again.consumed, 0);
  assert.deepEqual(again.events, []);
});

Deno.test("SpeedPartition: offsets applied before this session go to the lake only", () => {
  const restored: Progress = {
    nextOffset: 5,
    lakeOffset: 3,
    clockMs: H + 4_000,
    lakeClockMs: H + 2_000,
    caughtUpMs: -Infinity,
  };
  const p = partition(restored);
  assert.equal(p.resumeOffset, 3, "both sinks durable below 3");
  assert.equal(p.skipBelow, 5);
  const seen = recorder();
  const r = p.ingest(
    [msg(3, H + 3_000), msg(4, "bad"), msg(5, H + 5_000), msg(6, "bad")],
    7,
    ctx([seen]),
  );
  assert.deepEqual(r.events.map((e) => e.offset), [3, 5], "the lake gets the replay");
  assert.deepEqual(seen.seen, [5], "participants see applied events once");
  assert.deepEqual(r.rejected, ["not_json"], "offset 4 was dead-lettered before");
  const part = p.take(7, { upsertOnly: false, participants: [seen] })!;
  assert.deepEqual(part.letters.map((l) => l.offset), [6]);
  assert.equal(part.deltas.length + (part.inserts?.length ?? 0), 1, "one window row, offset 5's");
  assert.equal(part.nextOffset, 7);
});

Deno.test("SpeedPartition.take() takes once; a flush with nothing new is skipped", () => {
  const p = partition();
  p.ingest([msg(0, H + 1_000, 3), msg(1, H + 2_000, 4)], 2, ctx());
  const take = { upsertOnly: false, participants: [] };
  const part = p.take(undefined, take)!;
  // Rows of a partition that never flushed are new: inserted, not upserted.
  assert.deepEqual(part.inserts?.map((d) => [d.key, d.value]), [["A", 7]]);
  assert.deepEqual(part.deltas, []);
  assert.equal(part.lakeOffset, 0, "nothing durable in the lake yet");
  p.written(part);
  const second = p.take(2, take)!;
  assert.equal(second.lakeOffset, 2, "the lake caught up: its offset moves");
  assert.equal(second.lakeClockMs, H + 2_000);
  assert.deepEqual(second.lakeHours, [H], "the hour got durable lake rows");
  p.written(second);
  assert.equal(p.take(2, take), undefined);
  // The same window again: its row may be stored now, so it is upserted.
  p.ingest([msg(2, H + 3_000, 5)], 3, ctx());
  const third = p.take(3, take)!;
  assert.deepEqual(third.deltas.map((d) => [d.key, d.value]), [["A", 5]]);
  assert.deepEqual(third.inserts, []);
  p.written(third);
  assert.deepEqual(p.take(3, { upsertOnly: true, participants: [] }), undefined);
});

Deno.test("SpeedPartition.written() counts the windows the watermark closed and a lake hour crossed", () => {
  const p = partition();
  p.ingest([msg(0, H + HOUR - 1_000), msg(1, H + HOUR + W + L)], 2, ctx());
  assert.equal(p.hasClosedWindow(), true, "the watermark passed the first window");
  const part = p.take(2, { upsertOnly: false, participants: [] })!;
  const w = p.written(part);
  assert.equal(w.windowsWritten, 1);
  assert.equal(w.lakeHour, true, "complete past the end of hour H now");
  assert.equal(p.hasClosedWindow(), false);
});

Deno.test("SpeedPartition.commitOffset() is the lower of PostgreSQL and the lake, once", () => {
  const p = partition();
  p.ingest([msg(0, H), msg(1, H), msg(2, H)], 3, ctx());
  assert.equal(p.commitOffset(3), 0, "PostgreSQL holds nothing yet");
  p.committed = 0;
  assert.equal(p.commitOffset(3), undefined, "nothing new");
  p.written(p.take(1, { upsertOnly: false, participants: [] })!);
  assert.equal(p.commitOffset(1), 1);
  assert.equal(p.commitOffset(undefined), 3, "no lake state: PostgreSQL's offset");
  p.committed = 3;
  assert.equal(p.commitOffset(3), undefined);
});

Deno.test("SpeedPartition.mustWait(), takeDueCompactions() and closeIfIdle()", () => {
  const p = partition();
  p.ingest(
    [msg(0, H + 1_000, 1, "A"), msg(1, H + 2_000, 1, "B"), msg(2, H + 3_000, 1, "C")],
    3,
    ctx(),
  );
  assert.equal(p.mustWait(3), false);
  assert.equal(p.mustWait(2), true, "3 dirty rows");
  assert.deepEqual(p.takeDueCompactions(60_000), [], "the watermark is inside the hour");
  p.ingest([msg(3, H + HOUR + 60_000 + L)], 4, ctx());
  assert.deepEqual(p.takeDueCompactions(60_000), [H]);
  assert.deepEqual(p.takeDueCompactions(60_000), [], "once");
  assert.equal(p.closeIfIdle(NOW + 1_000, 30_000), false, "not idle yet");
  assert.equal(p.closeIfIdle(NOW + 30_000, 30_000), true);
  assert.equal(p.closeIfIdle(NOW + 60_000, 30_000), false, "nothing open any more");
});

Deno.test("SpeedPartition.switchTo() runs other metrics from the next message, keeping the clock", () => {
  const p = partition();
  p.ingest([msg(0, H + HOUR, 5, "A")], 1, ctx());
  const before = p.take(1, { upsertOnly: false, participants: [] })!;
  assert.deepEqual(before.inserts?.map((d) => d.metric), ["bytes_by_app"]);
  p.written(before);
  const counted = compileMetric({
    name: "events",
    groupBy: ["app"],
    aggregation: "count",
    field: "bytes",
  });
  p.switchTo([counted]);
  assert.equal(p.windows.clockMs, H + HOUR, "the clock carries over");
  // An event later than the lateness stays dropped under the new metrics too.
  const r = p.ingest(
    [msg(1, H + HOUR - W - 2 * L, 7, "A"), msg(2, H + HOUR + 1_000, 7, "B")],
    3,
    ctx(),
  );
  assert.equal(r.lateDropped, 1);
  const after = p.take(3, { upsertOnly: false, participants: [] })!;
  const rows = [...after.deltas, ...(after.inserts ?? [])];
  assert.deepEqual(rows.map((d) => [d.metric, d.key, d.value]), [["events", "B", 1]]);
  // Windows up to the clock may hold rows written meanwhile (a backfill): upserted.
  assert.deepEqual(after.inserts, []);
  assert.deepEqual(after.dropped?.map((d) => [d.metric, d.value]), [["events", 1]]);
  p.written(after);
  // A switch with nothing new still takes, when forced.
  assert.equal(p.take(3, { upsertOnly: false, participants: [] }), undefined);
  assert.ok(p.take(3, { upsertOnly: false, participants: [], force: true }));
});
