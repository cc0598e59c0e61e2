/**
 * The complete-hours rule (src/core/completeness.ts), synchronously: a
 * partition's lake is complete up to its clock at the lake-durable offset, or
 * up to the time it was seen fully consumed minus the lateness; the topic up
 * to the least of its partitions, every one of which must be known; an hour
 * once that is past its end plus the lateness; hours before the first hour
 * with data are empty.
 */
import assert from "node:assert/strict";
import {
  beforeAnyData,
  firstDataHour,
  hourComplete,
  type LakeProgress,
  oldestIncompleteHour,
  partitionCompleteMs,
  topicCompleteMs,
} from "../../src/core/completeness.ts";
import { type BatchedHour, hourState } from "../../src/batch/hour_state.ts";

const L = 15_000;
const H = Date.UTC(2026, 10, 28, 10);
const HOUR = 3_600_000;
const p = (partition: number, lakeClockMs: number, caughtUpMs = -Infinity): LakeProgress => ({
  partition,
  lakeClockMs,
  caughtUpMs,
});

Deno.test("partitionCompleteMs() is the lake clock, or the caught-up time minus the lateness if later", () => {
  const cases: [LakeProgress, number][] = [
    [p(0, H), H],
    [p(0, -Infinity), -Infinity],
    [p(0, H, H + 60_000), H + 60_000 - L], // quiet and caught up: the wall clock moves it on
    [p(0, H + 60_000, H + 10_000), H + 60_000], // a clock ahead of the wall time stays
    [p(0, -Infinity, H), H - L], // a partition that never had an event
  ];
  for (const [progress, want] of cases) {
    assert.equal(partitionCompleteMs(progress, L), want, JSON.stringify(progress));
  }
});

Deno.test("topicCompleteMs() is the least partition, and -Infinity while a partition is unknown", () => {
  assert.equal(topicCompleteMs([p(0, H + 5), p(1, H + 2), p(2, H + 9)], 3, L), H + 2);
  // Partition 1 has no progress row (never flushed by any instance).
  assert.equal(topicCompleteMs([p(0, H + 5), p(2, H + 9)], 3, L), -Infinity);
  // The topic's partition count is unknown.
  assert.equal(topicCompleteMs([p(0, H)], 0, L), -Infinity);
  // Rows beyond the count (a topic recreated smaller) do not count.
  assert.equal(topicCompleteMs([p(0, H + 5), p(1, H + 1)], 1, L), H + 5);
  // An idle partition does not hold the others back beyond the lateness.
  assert.equal(topicCompleteMs([p(0, H + HOUR), p(1, -Infinity, H + 2 * HOUR)], 2, L), H + HOUR);
});

Deno.test("hourComplete() needs every partition past the hour's end plus the lateness", () => {
  const end = H + HOUR;
  assert.equal(hourComplete(H, end + L - 1, L), false);
  assert.equal(hourComplete(H, end + L, L), true);
  assert.equal(hourComplete(H, end, L), false);
  assert.equal(hourComplete(H, -Infinity, L), false);
  assert.equal(hourComplete(H, Infinity, L), true);
  // A quiet partition caught up at wall time T completes the hour once T >= end + 2 x lateness.
  const quiet = (t: number) => topicCompleteMs([p(0, end + L), p(1, -Infinity, t)], 2, L);
  assert.equal(hourComplete(H, quiet(end + 2 * L - 1), L), false);
  assert.equal(hourComplete(H, quiet(end + 2 * L), L), true);
});

Deno.test("oldestIncompleteHour() is the hour whose end the complete time minus the lateness has not reached", () => {
  assert.equal(oldestIncompleteHour(H + HOUR + L, L), H + HOUR);
  assert.equal(oldestIncompleteHour(H + HOUR + L - 1, L), H);
  assert.equal(oldestIncompleteHour(H + 30 * 60_000, L), H);
  assert.equal(oldestIncompleteHour(-Infinity, L), undefined);
  // Consistent with hourComplete: every hour before it is complete, it is not.
  for (const c of [H + 1, H + HOUR + L, H + 2 * HOUR + 7]) {
    const oldest = oldestIncompleteHour(c, L)!;
    assert.equal(hourComplete(oldest, c, L), false);
    assert.equal(hourComplete(oldest - HOUR, c, L), true);
  }
});

Deno.test("firstDataHour() is the earlier of the lake's first hour and the first hour a batch read rows from", () => {
  const cases: [number | undefined, number | undefined, number | undefined][] = [
    [undefined, undefined, undefined], // nothing seen: no hour is before any data
    [H, undefined, H],
    [undefined, H, H],
    [H, H - 3 * HOUR, H - 3 * HOUR], // a lake older than its change records
    [H - HOUR, H, H - HOUR],
  ];
  for (const [lake, read, want] of cases) assert.equal(firstDataHour(lake, read), want);
});

Deno.test("beforeAnyData() holds for hours starting before the first hour with data, and for none when it is unknown", () => {
  assert.equal(beforeAnyData(H - 72 * HOUR, H), true); // days before the pipeline existed
  assert.equal(beforeAnyData(H - HOUR, H), true);
  assert.equal(beforeAnyData(H, H), false); // the first hour itself holds data
  assert.equal(beforeAnyData(H + 5 * HOUR, H), false); // a quiet hour later is not empty
  assert.equal(beforeAnyData(H - 72 * HOUR, undefined), false);
});

Deno.test("hourState() is empty before the first hour with data, whatever the lake's completeness", () => {
  const when = { completeMs: H + 3 * HOUR, allowedLatenessMs: L, nowMs: H + 4 * HOUR, graceMs: 0 };
  const batched: BatchedHour = { hour: H - 2 * HOUR, lastRunId: "1", completedAt: H, stale: false };
  const cases: [number, BatchedHour | undefined, number | undefined, string][] = [
    [H - 48 * HOUR, undefined, H, "empty"], // was complete: the lake is complete past it
    [H - 2 * HOUR, batched, H, "empty"], // batched empty before this rule: still nothing there
    [H, undefined, H, "complete"],
    [H + 3 * HOUR, undefined, H, "incomplete"],
    [H - 48 * HOUR, undefined, undefined, "complete"], // nothing known: as before
  ];
  for (const [hour, b, first, want] of cases) {
    assert.equal(
      hourState(hour, b, { ...when, firstDataHour: first }),
      want,
      new Date(hour).toISOString(),
    );
  }
});
