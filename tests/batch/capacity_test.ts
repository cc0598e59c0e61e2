/** The in-process engine's row limit (src/batch/capacity.ts), without I/O. */
import assert from "node:assert/strict";
import { BYTES_PER_ROW, processRowLimit } from "../../src/batch/capacity.ts";
import { HourTooLargeError } from "../../src/batch/errors.ts";

Deno.test("processRowLimit() is batch.process_max_rows when set, else half the machine's memory at BYTES_PER_ROW", () => {
  const gib = 2 ** 30;
  assert.deepEqual(processRowLimit(1_000, 24 * gib), { limit: 1_000, fromMemory: false });
  assert.deepEqual(processRowLimit(undefined, 24 * gib), {
    limit: 322_122_547,
    fromMemory: true,
  });
  assert.equal(BYTES_PER_ROW, 40);
  // 4 GiB: 2 GiB for the engine, about 53.7 million rows (the 36M-row hour of BENCHMARKS.md fits).
  assert.equal(processRowLimit(undefined, 4 * gib).limit, 53_687_091);
});

Deno.test("HourTooLargeError says where a limit from memory comes from", () => {
  assert.equal(
    new HourTooLargeError(400_000_000, 322_122_547, true).message,
    "the hour holds 400,000,000 lake rows, more than the in-process engine reads (batch.process_max_rows: 322,122,547, from half of this machine's memory at about 40 bytes a row): run hours this large on Spark (batch.engine: spark, docs/scaling.md), or raise batch.process_max_rows",
  );
});
