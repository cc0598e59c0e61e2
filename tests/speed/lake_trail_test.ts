/**
 * LakeTrail (src/speed/lake_trail.ts), synchronously: what a flush records
 * about the lake — the clock at the lake-durable offset, the caught-up time,
 * and the hours that got durable lake rows since the previous flush.
 */
import assert from "node:assert/strict";
import { LakeTrail } from "../../src/speed/lake_trail.ts";

const HOUR = 3_600_000;
const H = Date.UTC(2026, 10, 28, 10);

Deno.test("LakeTrail.take() gives the clock at the last batch end at or below the lake offset", () => {
  const t = new LakeTrail();
  assert.equal(t.take(0).clockMs, -Infinity);
  t.event(0, H + 10);
  t.event(1, H + 30);
  t.mark(2);
  t.event(2, H + 20); // late: the clock stays
  t.event(3, H + 50);
  t.mark(4);
  // Offset 3 is inside the second batch: the first batch's clock is a lower bound.
  assert.equal(t.take(3).clockMs, H + 30);
  assert.equal(t.take(4).clockMs, H + 50);
  // Never goes back.
  assert.equal(t.take(1).clockMs, H + 50);
});

Deno.test("LakeTrail starts from the restored clock and caught-up time", () => {
  const t = new LakeTrail(H + 5, H + 7);
  assert.deepEqual(t.take(10), { clockMs: H + 5, caughtUpMs: H + 7, hours: [] });
  t.event(10, H + 3); // replayed events older than the restored clock
  t.mark(11);
  assert.equal(t.take(11).clockMs, H + 5);
});

Deno.test("LakeTrail: a partition is caught up once the lake reaches an end read earlier", () => {
  const t = new LakeTrail();
  t.sawEnd(5, H + 1_000);
  assert.equal(t.take(4).caughtUpMs, -Infinity);
  assert.equal(t.take(5).caughtUpMs, H + 1_000);
  // A newer end that the lake has not reached keeps the older caught-up time.
  t.sawEnd(9, H + 2_000);
  assert.equal(t.take(6).caughtUpMs, H + 1_000);
  assert.equal(t.take(9).caughtUpMs, H + 2_000);
  // An empty partition: end 0, lake 0.
  const empty = new LakeTrail();
  empty.sawEnd(0, H);
  assert.equal(empty.take(0).caughtUpMs, H);
});

Deno.test("LakeTrail.take() lists each hour with events below the lake offset once, then again only for new ones", () => {
  const t = new LakeTrail();
  t.event(0, H + 1);
  t.event(1, H + HOUR + 1);
  t.event(2, H + 2); // a late event of the first hour
  t.event(3, H + HOUR + 2);
  t.mark(4);
  assert.deepEqual(t.take(0).hours, []);
  assert.deepEqual(t.take(2).hours, [H, H + HOUR]);
  // Offset 2 (hour H) and 3 (hour H+1) became durable.
  assert.deepEqual(t.take(4).hours, [H, H + HOUR]);
  assert.deepEqual(t.take(4).hours, []);
  assert.equal(t.pendingHours, 0);
  t.event(4, H + 3);
  t.mark(5);
  assert.deepEqual(t.take(5).hours, [H]);
});
