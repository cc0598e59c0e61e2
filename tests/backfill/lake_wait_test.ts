/**
 * Why a backfill waits, and when it stops waiting (src/backfill/lake_wait.ts,
 * waits.ts), synchronously: the reason names the partition, the offsets and
 * the roll; a partition whose progress stood still longer than a roll and a
 * flush (and the margin) is stalled; a wait is logged when it begins, again
 * only after a while, and ends with how long it lasted.
 */
import assert from "node:assert/strict";
import {
  lakeStalled,
  STALL_MARGIN_MS,
  stallAfterMs,
  stalledMessage,
  waitReason,
} from "../../src/backfill/lake_wait.ts";
import { WAIT_LOG_EVERY_MS, Waits } from "../../src/backfill/waits.ts";
import type { Logger } from "../../src/log.ts";

const PACE = { rollMaxAgeMs: 60_000, flushIntervalMs: 1_000 };
const LAG = { partition: 2, lakeOffset: 900, stopOffset: 1_200 };

Deno.test("waitReason() names the partition, the offset waited for, the lake's and the roll", () => {
  assert.equal(
    waitReason(LAG, PACE),
    "waiting for the lake's files up to offset 1200 of partition 2 (durable up to 900): " +
      "the speed layer rolls them every 1m",
  );
});

Deno.test("lakeStalled() only once the progress stood still longer than a roll, a flush and the margin", () => {
  const bound = 60_000 + 1_000 + STALL_MARGIN_MS;
  assert.equal(stallAfterMs(PACE), bound);
  const cases: [number | undefined, boolean][] = [
    [0, false], // flushed just now: a pipeline runs
    [59_000, false], // idle, the open file not rolled yet
    [bound, false],
    [bound + 1, true], // no roll came: nothing writes the lake
    [86_400_000, true], // stopped yesterday
    [undefined, true], // no speed layer ever recorded the partition
  ];
  for (const [age, want] of cases) assert.equal(lakeStalled(age, PACE), want, String(age));
});

Deno.test("stalledMessage() says where the lake is, how long nothing moved, and what to do", () => {
  const m = stalledMessage(LAG, 125_400, PACE);
  assert.match(m, /^the lake is durable up to offset 900 of partition 2, not up to 1200 /);
  assert.match(m, /recorded nothing for it for 125s \(it rolls its files every 1m\)/);
  assert.match(m, /the pipeline is not running .*start it, and its backfill finishes the rest$/);
  assert.match(stalledMessage(LAG, undefined, PACE), /has recorded no progress for it/);
});

function capture(): { log: Logger; lines: { msg: string; fields: Record<string, unknown> }[] } {
  const lines: { msg: string; fields: Record<string, unknown> }[] = [];
  const push = (msg: string, fields?: Record<string, unknown>) =>
    lines.push({ msg, fields: fields ?? {} });
  const log: Logger = { debug: push, info: push, warn: push, error: push, child: () => log };
  return { log, lines };
}

Deno.test("Waits: logged with its reason when it begins, again only every WAIT_LOG_EVERY_MS, ended with its length", () => {
  let now = 1_000_000;
  const { log, lines } = capture();
  const waits = new Waits(log, () => now);
  waits.note("messaging_bytes_total", LAG, PACE);
  assert.deepEqual(lines.map((l) => l.msg), ["backfill waits for the lake"]);
  assert.equal(lines[0].fields.metric, "messaging_bytes_total");
  assert.equal(lines[0].fields.reason, waitReason(LAG, PACE));
  now += 1_000; // the next poll: still waiting, not logged again
  waits.note("messaging_bytes_total", { ...LAG, lakeOffset: 1_000 }, PACE);
  assert.equal(lines.length, 1);
  now += WAIT_LOG_EVERY_MS;
  waits.note("messaging_bytes_total", { ...LAG, lakeOffset: 1_100 }, PACE);
  assert.deepEqual(lines.map((l) => l.msg), [
    "backfill waits for the lake",
    "backfill still waits for the lake",
  ]);
  assert.equal(lines[1].fields.waited_ms, 1_000 + WAIT_LOG_EVERY_MS);
  assert.match(String(lines[1].fields.reason), /durable up to 1100/);
  const [w] = waits.list();
  assert.deepEqual([w.metric, w.partition, w.sinceMs], ["messaging_bytes_total", 2, 1_000_000]);
  assert.deepEqual(waits.list(["other"]), []);
  now += 500;
  assert.equal(waits.end("messaging_bytes_total", 2), 1_500 + WAIT_LOG_EVERY_MS);
  assert.equal(waits.end("messaging_bytes_total", 2), undefined);
  assert.deepEqual(waits.list(), []);
});
