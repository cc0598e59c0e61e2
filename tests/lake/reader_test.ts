/**
 * readHour() and compactHour(): one hour folder only, requested columns only,
 * exactly-once rows when files overlap, compaction to one file per partition
 * on a local folder and on fake-gcs-server, and bad files named in the error.
 */
import assert from "node:assert/strict";
import type { SourcedEvent } from "../../src/core/event.ts";
import {
  compactHour,
  encodeColumns,
  eventsToColumns,
  GcsStore,
  hourPath,
  LakeFileError,
  LakeWriter,
  LocalStore,
  type ObjectStore,
  readHour,
  segmentFileName,
} from "../../src/lake/mod.ts";
import type { Logger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";
import { gcsEndpoint, uniqueName } from "../_support/services.ts";

const H10 = Date.UTC(2026, 10, 28, 10);
const noop = () => {};
const quiet: Logger = { debug: noop, info: noop, warn: noop, error: noop, child: () => quiet };

function events(partition: number, from: number, n: number, startMs = H10): SourcedEvent[] {
  return Array.from({ length: n }, (_, i) => ({
    partition,
    offset: from + i,
    timestamp: (startMs + i * 1000) / 1000,
    id: `dev-${(from + i) % 11}`,
    antenna_id: `ant-${(from + i) % 3}`,
    app: "video",
    bytes: (from + i) * 10,
  }));
}

async function withStore(kind: "local" | "gcs", fn: (s: ObjectStore) => Promise<void>) {
  if (kind === "gcs") {
    const bucket = uniqueName("lakeread").replaceAll("_", "-");
    return await fn(new GcsStore({ bucket, apiEndpoint: gcsEndpoint() }));
  }
  const dir = await Deno.makeTempDir({ prefix: "lake_reader_" });
  try {
    await fn(new LocalStore(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes `evs` as one file named by its offsets, in the hour of `hour`. */
async function putFile(store: ObjectStore, evs: SourcedEvent[], hour = H10): Promise<string> {
  const key = hourPath(hour) +
    segmentFileName(evs[0].partition, evs[0].offset, evs[evs.length - 1].offset);
  await store.put(key, encodeColumns(eventsToColumns(evs), evs.length));
  return key;
}

Deno.test("readHour() of an hour without files says it is missing", async () => {
  await withStore("local", async (store) => {
    await putFile(store, events(0, 0, 5), H10 + 3_600_000);
    const h = await readHour(store, H10, ["bytes"]);
    assert.equal(h.missing, true);
    assert.equal(h.rows, 0);
    assert.deepEqual(h.files, []);
    assert.equal(h.columns.bytes!.length, 0);
  });
});

Deno.test("readHour() reads only its hour folder and only the requested columns", async () => {
  await withStore("local", async (store) => {
    await putFile(store, events(0, 0, 30));
    await putFile(store, events(1, 0, 20));
    await putFile(store, events(0, 30, 10), H10 + 3_600_000);
    const h = await readHour(store, H10, ["id", "bytes"]);
    assert.equal(h.missing, false);
    assert.equal(h.rows, 50);
    assert.equal(h.files.length, 2);
    assert.deepEqual(Object.keys(h.columns).sort(), ["bytes", "id"]);
    assert.ok(h.columns.bytes instanceof Float64Array);
    const total = h.columns.bytes!.reduce((a, b) => a + b, 0);
    const expected = [...events(0, 0, 30), ...events(1, 0, 20)].reduce((a, e) => a + e.bytes, 0);
    assert.equal(total, expected);
    await assert.rejects(readHour(store, H10, ["nope"]), TypeError);
  });
});

Deno.test("readHour() drops rows that overlapping files both hold, and only those", async () => {
  await withStore("local", async (store) => {
    const all = events(4, 0, 150);
    await putFile(store, all.slice(0, 100)); // 0..99
    await putFile(store, all.slice(50, 150)); // 50..149: overlaps 50 rows
    await putFile(store, events(5, 50, 100)); // same offsets, other partition: no overlap
    const h = await readHour(store, H10, ["partition", "offset", "bytes"]);
    assert.equal(h.rows, 250);
    assert.equal(h.duplicates, 50);
    const p4 = [...h.columns.offset!].filter((_, i) => h.columns.partition![i] === 4);
    assert.deepEqual(p4.sort((a, b) => a - b), all.map((e) => e.offset));
  });
});

for (const kind of ["local", "gcs"] as const) {
  Deno.test(`compactHour() on ${kind} leaves one file per partition with the exact rows`, async () => {
    await withStore(kind, async (store) => {
      const w = new LakeWriter({
        store,
        roll: { maxRows: 10, maxBytes: 1e12, maxAgeMs: 1e9 },
        registry: new Registry(),
        log: quiet,
      });
      w.append(events(0, 100, 95));
      w.append(events(1, 0, 25));
      await w.flush();
      // A replay orphan overlapping two segments of partition 0.
      await putFile(store, events(0, 105, 10));
      const before = await readHour(store, H10);
      assert.equal(before.rows, 120);

      const r = await compactHour(store, H10, 0);
      assert.equal(r.inputs, 11);
      assert.equal(r.rows, 95);
      assert.equal(r.output, hourPath(H10) + segmentFileName(0, 100, 194));
      const keys = (await store.list(hourPath(H10))).map((e) => e.key);
      assert.equal(keys.filter((k) => k.includes("part-p0000-")).length, 1);
      assert.equal(keys.filter((k) => k.includes("part-p0001-")).length, 3);

      const after = await readHour(store, H10);
      assert.equal(after.rows, 120);
      assert.equal(after.duplicates, 0);
      const sum = (h: typeof after) => h.columns.bytes!.reduce((a, b) => a + b, 0);
      assert.equal(sum(after), sum(before));
      const p0 = await readHour(store, H10, ["partition", "offset"]);
      const offs = [...p0.columns.offset!].filter((_, i) => p0.columns.partition![i] === 0);
      assert.deepEqual(offs, events(0, 100, 95).map((e) => e.offset)); // sorted by offset

      assert.deepEqual(await compactHour(store, H10, 0), { inputs: 0 });
      assert.deepEqual(await compactHour(store, H10 + 3_600_000, 0), { inputs: 0 });
    });
  });
}

Deno.test("compactHour() output may reuse an input's name and keeps it", async () => {
  await withStore("local", async (store) => {
    const big = await putFile(store, events(2, 0, 40)); // 0..39, e.g. compacted earlier
    await putFile(store, events(2, 10, 5)); // an orphan inside it
    const r = await compactHour(store, H10, 2);
    assert.equal(r.output, big);
    assert.deepEqual((await store.list("")).map((e) => e.key), [big]);
    assert.equal((await readHour(store, H10)).rows, 40);
  });
});

Deno.test("readHour() names a corrupt or truncated file in a LakeFileError", async () => {
  await withStore("local", async (store) => {
    const good = await putFile(store, events(0, 0, 50));
    const bytes = await store.get(good);
    const cases: [string, Uint8Array][] = [
      ["garbage", new TextEncoder().encode("this is not parquet at all, not even close")],
      ["truncated", bytes.slice(0, Math.floor(bytes.length / 2))],
      ["footer cut", bytes.slice(0, bytes.length - 9)],
      ["data zeroed", bytes.map((b, i) => (i > 4 && i < bytes.length / 2 ? 0 : b))],
    ];
    for (const [what, content] of cases) {
      const bad = hourPath(H10) + segmentFileName(1, 0, 49);
      await store.put(bad, content);
      await assert.rejects(readHour(store, H10, ["id", "bytes"]), (err: unknown) => {
        assert.ok(err instanceof LakeFileError, `${what}: ${err}`);
        assert.equal(err.key, bad, what);
        assert.ok(err.message.includes(bad), what);
        return true;
      });
      await assert.rejects(
        compactHour(store, H10, 1).then(() => readHour(store, H10)),
        LakeFileError,
      );
    }
  });
});
