/**
 * compactHour() on a local folder and on fake-gcs-server: many disjoint files
 * and overlapping (replayed, or a compacted file beside its inputs) files
 * become one file holding each input row once, in offset order, byte for byte
 * what encodeColumns makes of those rows at the same row group size; row
 * groups stay within the configured size; inputs are decoded a slice at a
 * time; a failure deletes nothing.
 */
import assert from "node:assert/strict";
import { parquetMetadata } from "hyparquet";
import type { SourcedEvent } from "../src/core/event.ts";
import {
  compactHour,
  type CompactOptions,
  encodeColumns,
  eventsToColumns,
  GcsStore,
  hourPath,
  LakeFileError,
  LocalStore,
  type ObjectStore,
  readHour,
  segmentFileName,
  StoreError,
} from "../src/lake/mod.ts";
import { gcsEndpoint, uniqueName } from "./_services.ts";

const H10 = Date.UTC(2026, 10, 28, 10);
const P = 3;

/** The event at `offset`: every copy of it (a replay) is the same. */
function event(offset: number): SourcedEvent {
  return {
    partition: P,
    offset,
    timestamp: (H10 + offset * 997) / 1000,
    id: `dev-${(offset * 7) % 23}`,
    antenna_id: `ant-${offset % 5}`,
    app: ["video", "music", "maps"][offset % 3],
    bytes: offset * 1_000_003,
  };
}

/** Events at the offsets `from..to` (inclusive), skipping every 9th (not lake rows). */
function range(from: number, to: number): SourcedEvent[] {
  const out = [];
  for (let o = from; o <= to; o++) if (o % 9 !== 4) out.push(event(o));
  return out;
}

/** Writes one file named after `from..to` holding `range(from, to)`. */
async function putSegment(store: ObjectStore, from: number, to: number, options = {}) {
  const evs = range(from, to);
  const key = hourPath(H10) + segmentFileName(P, from, to);
  await store.put(key, encodeColumns(eventsToColumns(evs), evs.length, options));
  return key;
}

/** Disjoint segments of uneven sizes covering `0..to`. */
async function putSegments(store: ObjectStore, to: number): Promise<string[]> {
  const keys = [];
  for (let from = 0, i = 0; from <= to; i++) {
    const end = Math.min(to, from + 17 + (i * 13) % 40);
    keys.push(await putSegment(store, from, end));
    from = end + 1;
  }
  return keys;
}

async function withStore(kind: "local" | "gcs", fn: (s: ObjectStore) => Promise<void>) {
  if (kind === "gcs") {
    const bucket = uniqueName("lakecompact").replaceAll("_", "-");
    return await fn(new GcsStore({ bucket, apiEndpoint: gcsEndpoint() }));
  }
  const dir = await Deno.makeTempDir({ prefix: "lake_compact_" });
  try {
    await fn(new LocalStore(dir));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Compacts and checks the output against `range(0, to)` encoded at once. */
async function compactsTo(store: ObjectStore, to: number, options: CompactOptions) {
  const inputs = (await store.list(hourPath(H10))).length;
  const r = await compactHour(store, H10, P, options);
  const want = range(0, to);
  assert.deepEqual(r, {
    inputs,
    output: hourPath(H10) + segmentFileName(P, 0, to),
    rows: want.length,
  });
  assert.deepEqual((await store.list(hourPath(H10))).map((e) => e.key), [r.output]);
  const bytes = await store.get(r.output!);
  const once = encodeColumns(eventsToColumns(want), want.length, {
    rowGroupSize: options.rowGroupSize,
  });
  assert.ok(bytes.length === once.length && bytes.every((b, i) => b === once[i]), "same bytes");

  const h = await readHour(store, H10);
  assert.equal(h.rows, want.length);
  assert.equal(h.duplicates, 0);
  assert.deepEqual([...h.columns.offset!], want.map((e) => e.offset));
  assert.deepEqual(h.columns.id, want.map((e) => e.id));
  assert.deepEqual([...h.columns.timestamp!], want.map((e) => e.timestamp * 1000));
  assert.deepEqual([...h.columns.bytes!], want.map((e) => e.bytes));
  return bytes;
}

for (const kind of ["local", "gcs"] as const) {
  Deno.test(`compactHour() on ${kind} streams disjoint files into the rows encoded at once`, async () => {
    await withStore(kind, async (store) => {
      const keys = await putSegments(store, 999);
      assert.ok(keys.length > 20);
      const writerFile = parquetMetadata((await store.get(keys[0])).slice().buffer);
      const bytes = await compactsTo(store, 999, { rowGroupSize: 128, sliceRows: 16 });
      // Same schema and encodings as the files the writer produces.
      const out = parquetMetadata(bytes.slice().buffer);
      assert.deepEqual(out.schema, writerFile.schema);
      const encodings = (m: typeof out) =>
        m.row_groups[0].columns.map((c) => [c.meta_data!.encodings, c.meta_data!.codec]);
      assert.deepEqual(encodings(out), encodings(writerFile));
    });
  });

  Deno.test(`compactHour() on ${kind} merges replayed and compacted files, each row once`, async () => {
    await withStore(kind, async (store) => {
      await putSegments(store, 599);
      // Replays cut at other offsets, and a compaction that crashed before its deletes.
      await putSegment(store, 25, 84);
      await putSegment(store, 150, 229);
      await putSegment(store, 0, 299);
      await putSegment(store, 590, 599);
      await compactsTo(store, 599, { rowGroupSize: 100, sliceRows: 16 });
    });
  });
}

Deno.test("compactHour() writes row groups of the configured size, the last one shorter", async () => {
  const cases: { rowGroupSize?: number; want: (n: number) => number[] }[] = [
    { rowGroupSize: 100, want: (n) => [...Array(Math.floor(n / 100)).fill(100), n % 100] },
    { rowGroupSize: 1, want: (n) => Array(n).fill(1) },
    { rowGroupSize: 10_000, want: (n) => [n] },
    { want: (n) => [n] }, // ROW_GROUP_SIZE
  ];
  for (const { rowGroupSize, want } of cases) {
    await withStore("local", async (store) => {
      await putSegments(store, 1_199);
      // Inputs with several row groups of their own.
      await putSegment(store, 300, 700, { rowGroupSize: 37 });
      const r = await compactHour(store, H10, P, { rowGroupSize, sliceRows: 50 });
      const meta = parquetMetadata((await store.get(r.output!)).slice().buffer);
      const sizes = meta.row_groups.map((g) => Number(g.num_rows));
      assert.deepEqual(sizes, want(r.rows!), `rowGroupSize ${rowGroupSize}`);
    });
  }
});

Deno.test("compactHour() decodes a slice of each input at a time, one input open unless they overlap", async () => {
  await withStore("local", async (store) => {
    const keys = await putSegments(store, 1_999);
    const slices: { key: string; rows: number; open: number }[] = [];
    const r = await compactHour(store, H10, P, { sliceRows: 16, onSlice: (s) => slices.push(s) });
    assert.ok(slices.every((s) => s.rows <= 16 && s.open === 1));
    // Every input row decoded once, in the inputs' offset order.
    assert.equal(slices.reduce((n, s) => n + s.rows, 0), r.rows);
    assert.deepEqual([...new Set(slices.map((s) => s.key))], keys);

    // A crash after the put: the compacted file beside all its inputs.
    const big = r.output!;
    await putSegments(store, 1_999);
    slices.length = 0;
    const again = await compactHour(store, H10, P, {
      sliceRows: 16,
      onSlice: (s) => slices.push(s),
    });
    assert.equal(again.output, big);
    assert.equal(again.rows, r.rows);
    assert.ok(slices.every((s) => s.rows <= 16 && s.open <= 2));
    assert.equal(slices.reduce((n, s) => n + s.rows, 0), 2 * r.rows!);
  });
});

/** A store that records its calls and can fail the put. */
class RecordingStore extends LocalStore {
  calls: string[] = [];
  failPut = false;
  override async put(key: string, bytes: Uint8Array) {
    this.calls.push(`put ${key}`);
    if (this.failPut) throw new StoreError("put", key, "fault", "injected");
    await super.put(key, bytes);
  }
  override async delete(key: string) {
    this.calls.push(`delete ${key}`);
    await super.delete(key);
  }
}

Deno.test("compactHour() puts the whole output before deleting, and deletes nothing when it fails", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lake_compact_" });
  try {
    const store = new RecordingStore(dir);
    const keys = await putSegments(store, 299);
    store.calls = [];
    store.failPut = true;
    await assert.rejects(compactHour(store, H10, P), StoreError);
    assert.deepEqual((await store.list("")).map((e) => e.key), keys);

    store.failPut = false;
    store.calls = [];
    const r = await compactHour(store, H10, P);
    assert.deepEqual(store.calls, [`put ${r.output}`, ...keys.map((k) => `delete ${k}`)]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compactHour() names an input whose rows break its offset order, and deletes nothing", async () => {
  await withStore("local", async (store) => {
    await putSegments(store, 199);
    const cases: [string, SourcedEvent[], string, RegExp][] = [
      ["unsorted", [event(250), event(240)], segmentFileName(P, 240, 250), /offset order/],
      ["below its name", [event(210), event(230)], segmentFileName(P, 220, 230), /below/],
    ];
    for (const [what, evs, name, message] of cases) {
      const key = hourPath(H10) + name;
      await store.put(key, encodeColumns(eventsToColumns(evs), evs.length));
      const before = await store.list("");
      await assert.rejects(compactHour(store, H10, P), (err: unknown) => {
        assert.ok(err instanceof LakeFileError, `${what}: ${err}`);
        assert.equal(err.key, key, what);
        assert.match(err.message, message, what);
        return true;
      });
      assert.deepEqual(await store.list(""), before, what);
      await store.delete(key);
    }
  });
});
