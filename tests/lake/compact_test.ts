/**
 * compactHour() on a local folder and on fake-gcs-server. Small disjoint files
 * and overlapping (replayed, or a compacted file beside its inputs) files are
 * merged: one file holding each input row once, in offset order, byte for byte
 * what encodeColumns makes of those rows at the same row group size; row
 * groups stay within the configured size; inputs are decoded a slice at a
 * time. Full-size disjoint files are copied: the output's row groups are the
 * inputs', their pages byte for byte, offset indexes moved with them, and it
 * reads as the inputs' rows. A failure deletes nothing.
 */
import assert from "node:assert/strict";
import { type ColumnChunk, type FileMetaData, parquetMetadata, readOffsetIndex } from "hyparquet";
import type { SourcedEvent } from "../../src/core/event.ts";
import {
  compactHour,
  type CompactOptions,
  COPY_MIN_AVERAGE_ROWS,
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
  unfinishedCompactions,
} from "../../src/lake/mod.ts";
import { gcsEndpoint, uniqueName } from "../_support/services.ts";

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
  failDelete = false;
  override async put(key: string, bytes: Uint8Array) {
    this.calls.push(`put ${key}`);
    if (this.failPut) throw new StoreError("put", key, "fault", "injected");
    await super.put(key, bytes);
  }
  override async delete(key: string) {
    this.calls.push(`delete ${key}`);
    if (this.failDelete) throw new StoreError("delete", key, "fault", "injected");
    await super.delete(key);
  }
}

const MARKER = `_staging/compacting-p0003-h${H10}.json`;

Deno.test("compactHour() puts the whole output before deleting, and deletes nothing when it fails", async () => {
  // The merge path (small inputs), and the copy path forced on them.
  for (const copyMinAverageRows of [undefined, 1]) {
    const dir = await Deno.makeTempDir({ prefix: "lake_compact_" });
    try {
      const store = new RecordingStore(dir);
      const keys = await putSegments(store, 299);
      store.calls = [];
      store.failPut = true;
      await assert.rejects(compactHour(store, H10, P, { copyMinAverageRows }), StoreError);
      assert.deepEqual((await store.list("")).map((e) => e.key), keys);

      store.failPut = false;
      store.calls = [];
      const r = await compactHour(store, H10, P, { copyMinAverageRows });
      // Between a marker's put and delete, so a crash in between is found again.
      assert.deepEqual(store.calls, [
        `put ${MARKER}`,
        `put ${r.output}`,
        ...keys.map((k) => `delete ${k}`),
        `delete ${MARKER}`,
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("compactHour() cut short after its output leaves a marker unfinishedCompactions() finds; a second run finishes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lake_compact_" });
  try {
    const store = new RecordingStore(dir);
    const keys = await putSegments(store, 299);
    assert.deepEqual(await unfinishedCompactions(store, P), []);
    store.failDelete = true;
    await assert.rejects(compactHour(store, H10, P), StoreError);
    assert.deepEqual(await unfinishedCompactions(store, P), [H10]);
    assert.deepEqual(await unfinishedCompactions(store, P + 1), [], "another partition's");
    // The output and every input are there: readers deduplicate the overlap.
    assert.equal((await store.list("year=")).length, keys.length + 1);
    store.failDelete = false;
    const r = await compactHour(store, H10, P);
    assert.deepEqual((await store.list("year=")).map((e) => e.key), [r.output]);
    assert.deepEqual(await unfinishedCompactions(store, P), []);
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

/** The bytes of a column chunk: its dictionary page, if any, and data pages. */
function chunkBytes(file: Uint8Array, chunk: ColumnChunk): Uint8Array {
  const m = chunk.meta_data!;
  const start = Number(m.dictionary_page_offset ?? m.data_page_offset);
  return file.subarray(start, start + Number(m.total_compressed_size));
}

function footer(file: Uint8Array): FileMetaData {
  return parquetMetadata(file.slice().buffer);
}

/**
 * Compacts the hour and checks that its output is the inputs' row groups,
 * their column chunks byte for byte, in offset order, and reads as `want`.
 */
async function copiesTo(store: ObjectStore, want: SourcedEvent[], options: CompactOptions = {}) {
  const keys = (await store.list(hourPath(H10))).map((e) => e.key);
  const inputs = new Map<string, Uint8Array>();
  for (const k of keys) inputs.set(k, await store.get(k));
  const r = await compactHour(store, H10, P, options);
  assert.deepEqual(r, {
    inputs: keys.length,
    output: hourPath(H10) + segmentFileName(P, want[0].offset, want.at(-1)!.offset),
    rows: want.length,
  });
  assert.deepEqual((await store.list(hourPath(H10))).map((e) => e.key), [r.output]);

  const out = await store.get(r.output!);
  const meta = footer(out);
  // Keys sort by first offset (zero-padded names).
  const inGroups = [...inputs.values()].flatMap((b) =>
    footer(b).row_groups.map((g) => ({ file: b, group: g }))
  );
  assert.deepEqual(
    meta.row_groups.map((g) => g.num_rows),
    inGroups.map((g) => g.group.num_rows),
    "the inputs' row groups",
  );
  meta.row_groups.forEach((g, i) =>
    g.columns.forEach((c, j) => {
      const was = chunkBytes(inGroups[i].file, inGroups[i].group.columns[j]);
      assert.deepEqual(chunkBytes(out, c), was, `row group ${i}, column ${j}: same pages`);
    })
  );
  const writerFile = footer(inputs.values().next().value!);
  assert.deepEqual(meta.schema, writerFile.schema);
  assert.equal(meta.created_by, writerFile.created_by);
  assert.equal(meta.key_value_metadata, undefined);
  assert.equal(meta.num_rows, BigInt(want.length));

  const h = await readHour(store, H10);
  assert.equal(h.rows, want.length);
  assert.equal(h.duplicates, 0);
  assert.deepEqual([...h.columns.offset!], want.map((e) => e.offset));
  assert.deepEqual([...h.columns.timestamp!], want.map((e) => e.timestamp * 1000));
  assert.deepEqual([...h.columns.bytes!], want.map((e) => e.bytes));
  assert.deepEqual([...h.columns.partition!], want.map((e) => e.partition));
  for (const c of ["id", "antenna_id", "app"] as const) {
    assert.deepEqual(h.columns[c], want.map((e) => e[c]), c);
  }
  return { out, inputs: [...inputs.values()] };
}

for (const kind of ["local", "gcs"] as const) {
  Deno.test(`compactHour() on ${kind} copies the row groups of full disjoint segments, pages unchanged`, async () => {
    await withStore(kind, async (store) => {
      // Two full segments and a short one: 21,629 rows on average.
      await putSegment(store, 0, 35_999);
      await putSegment(store, 36_000, 71_999);
      await putSegment(store, 72_000, 72_999);
      const want = range(0, 72_999);
      assert.ok(want.length >= 3 * COPY_MIN_AVERAGE_ROWS);
      await copiesTo(store, want);
    });
  });
}

Deno.test("compactHour() copies column chunks of several pages with their offset indexes moved", async () => {
  await withStore("local", async (store) => {
    // 8 B a row of `bytes` in 1 MB pages: the second file has chunks of two pages.
    await putSegment(store, 0, 9_999);
    await putSegment(store, 10_000, 159_999);
    const { out, inputs } = await copiesTo(store, range(0, 159_999));
    const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
    const was = footer(inputs[1]).row_groups[0].columns;
    let indexed = 0;
    footer(out).row_groups[1].columns.forEach((c, j) => {
      if (was[j].offset_index_offset === undefined) {
        assert.equal(c.offset_index_offset, undefined);
        return;
      }
      indexed++;
      const before = readOffsetIndex({
        view: view(inputs[1]),
        offset: Number(was[j].offset_index_offset),
      });
      const after = readOffsetIndex({ view: view(out), offset: Number(c.offset_index_offset) });
      const shift = c.meta_data!.data_page_offset - was[j].meta_data!.data_page_offset;
      assert.ok(shift > 0n);
      assert.deepEqual(
        after.page_locations,
        before.page_locations.map((p) => ({ ...p, offset: p.offset + shift })),
      );
      // Each location starts a page of the same bytes as before.
      for (const [k, p] of after.page_locations.entries()) {
        const q = before.page_locations[k];
        assert.deepEqual(
          out.subarray(Number(p.offset), Number(p.offset) + p.compressed_page_size),
          inputs[1].subarray(Number(q.offset), Number(q.offset) + q.compressed_page_size),
        );
      }
    });
    assert.ok(indexed >= 2, `${indexed} column chunks with an offset index`);
  });
});

Deno.test("compactHour() copies only disjoint inputs averaging copyMinAverageRows rows", async () => {
  const cases: { what: string; overlap: boolean; copyMinAverageRows?: number; copied: boolean }[] =
    [
      { what: "small disjoint inputs", overlap: false, copied: false },
      {
        what: "disjoint inputs at the threshold",
        overlap: false,
        copyMinAverageRows: 25,
        copied: true,
      },
      { what: "disjoint inputs below it", overlap: false, copyMinAverageRows: 34, copied: false },
      { what: "overlapping inputs", overlap: true, copyMinAverageRows: 1, copied: false },
    ];
  for (const { what, overlap, copyMinAverageRows, copied } of cases) {
    await withStore("local", async (store) => {
      // 533 rows in 16 files: 33.3 on average.
      const keys = await putSegments(store, 599);
      if (overlap) await putSegment(store, 150, 229);
      const rows = range(0, 599).length;
      assert.deepEqual([rows, keys.length], [533, 16], what);
      const inputGroups = (await store.list(hourPath(H10))).length;
      const r = await compactHour(store, H10, P, { copyMinAverageRows });
      const groups = footer(await store.get(r.output!)).row_groups.length;
      assert.equal(groups, copied ? inputGroups : 1, what);
      assert.equal(r.rows, rows, what);
    });
  }
});
