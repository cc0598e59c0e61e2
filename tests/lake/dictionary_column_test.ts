/**
 * The fast path of dictionary-coded string columns (src/lake/dictionary_column.ts)
 * against hyparquet's own decoding, on lake files as the writer makes them:
 * one and several row groups, SNAPPY and uncompressed, dictionaries of 1 to
 * 40,000 values (index widths from 0 to 16 bits, runs and bit-packed groups),
 * multi-byte UTF-8, and files in another layout (PLAIN strings, written by
 * hyparquet-writer directly), which the fast path turns down so that
 * hyparquet reads them. Every row's string must be the one hyparquet reads.
 */
import assert from "node:assert/strict";
import { parquetMetadata, parquetRead } from "hyparquet";
import { ByteWriter, ParquetWriter } from "hyparquet-writer";
import { decodeDictionaryChunk } from "../../src/lake/dictionary_column.ts";
import { StringDictionary } from "../../src/lake/read_file.ts";
import { type EncodeOptions, SCHEMA } from "../../src/lake/format.ts";
import {
  allocColumns,
  encodeColumns,
  type EventColumns,
  hourPath,
  LocalStore,
  readHour,
  segmentFileName,
} from "../../src/lake/mod.ts";

const H = Date.UTC(2026, 10, 28, 10);

/** `n` rows whose id is drawn from `ids` distinct values (some of them multi-byte). */
function columns(n: number, ids: number, seed = 1): EventColumns {
  const c = allocColumns(n);
  let s = seed;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < n; i++) {
    const d = Math.floor(next() * ids);
    c.id[i] = d % 7 === 0
      ? `gerät-${d}-✓`
      : `00000000-0000-0000-0000-${String(d).padStart(12, "0")}`;
    c.antenna_id[i] = `ant-${d % 3}`;
    // Long runs of one value: RLE runs as well as bit-packed groups.
    c.app[i] = i % 1000 < 600 ? "SKYPE" : "NETFLIX";
    c.bytes[i] = i;
    c.timestamp[i] = H + i;
    c.partition[i] = 0;
    c.offset[i] = i;
  }
  return c;
}

/** Every string column of a file as hyparquet decodes it. */
async function strings(bytes: Uint8Array): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = { id: [], antenna_id: [], app: [] };
  await parquetRead({
    file: bytes.slice().buffer,
    columns: Object.keys(out),
    onChunk({ columnName, columnData, rowStart }) {
      for (let i = 0; i < columnData.length; i++) {
        out[columnName][rowStart + i] = columnData[i] as string;
      }
    },
  });
  return out;
}

/** The fast path on every row group of `name`: codes, or undefined when it turns the file down. */
function fastPath(bytes: Uint8Array, name: string): string[] | undefined {
  const meta = parquetMetadata(bytes.slice().buffer);
  const out = new Int32Array(Number(meta.num_rows));
  const dict = new StringDictionary();
  let at = 0;
  for (const g of meta.row_groups) {
    const m = g.columns.find((c) => c.meta_data!.path_in_schema.join(".") === name)!.meta_data!;
    const dictAt = Number(m.dictionary_page_offset ?? 0);
    const from = dictAt > 0
      ? Math.min(dictAt, Number(m.data_page_offset))
      : Number(m.data_page_offset);
    const chunk = bytes.subarray(from, from + Number(m.total_compressed_size));
    if (!decodeDictionaryChunk(chunk, m, Number(g.num_rows), dict, out, at)) return undefined;
    at += Number(g.num_rows);
  }
  return Array.from(out, (c) => dict.values[c]);
}

const CASES: { name: string; rows: number; ids: number; options: EncodeOptions }[] = [
  { name: "one row group, 40,000 ids", rows: 50_000, ids: 40_000, options: {} },
  { name: "one id (index width 0)", rows: 3_000, ids: 1, options: {} },
  { name: "several row groups", rows: 25_000, ids: 3_000, options: { rowGroupSize: 7_000 } },
  { name: "uncompressed", rows: 10_000, ids: 500, options: { codec: "UNCOMPRESSED" } },
];

for (const c of CASES) {
  Deno.test(`the fast path decodes what hyparquet decodes: ${c.name}`, async () => {
    const bytes = encodeColumns(columns(c.rows, c.ids), c.rows, c.options);
    const want = await strings(bytes);
    for (const name of ["id", "antenna_id", "app"]) {
      const got = fastPath(bytes, name);
      assert.ok(got, `the fast path takes ${name} of the writer's layout`);
      assert.equal(got.length, c.rows);
      assert.deepEqual(got, want[name], name);
    }
  });
}

Deno.test("the fast path turns down PLAIN strings, and readHour() reads them through hyparquet", async () => {
  const n = 2_000;
  const cols = columns(n, 50);
  const w = new ByteWriter();
  const pq = new ParquetWriter({
    writer: w,
    schema: SCHEMA,
  });
  const big = (a: Float64Array) => BigInt64Array.from(a, (x) => BigInt(x));
  await pq.write({
    columnData: [
      { name: "timestamp", data: big(cols.timestamp) },
      { name: "id", data: cols.id, encoding: "PLAIN" },
      { name: "antenna_id", data: cols.antenna_id, encoding: "PLAIN" },
      { name: "app", data: cols.app, encoding: "PLAIN" },
      { name: "bytes", data: big(cols.bytes) },
      { name: "partition", data: Int32Array.from(cols.partition) },
      { name: "offset", data: big(cols.offset) },
    ],
  });
  pq.finish();
  const bytes = new Uint8Array(w.getBuffer());
  assert.equal(fastPath(bytes, "id"), undefined, "not the writer's layout");

  const dir = await Deno.makeTempDir({ prefix: "dict_fast_" });
  try {
    const store = new LocalStore(dir);
    await store.put(hourPath(H) + segmentFileName(0, 0, n - 1), bytes);
    const h = await readHour(store, H, ["id", "app"], { strings: "dictionary" });
    const want = await strings(bytes);
    assert.deepEqual(Array.from(h.columns.id!.codes, (c) => h.columns.id!.dict[c]), want.id);
    assert.deepEqual(Array.from(h.columns.app!.codes, (c) => h.columns.app!.dict[c]), want.app);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the fast path never takes a truncated chunk for a whole one", () => {
  const n = 5_000;
  const bytes = encodeColumns(columns(n, 800), n);
  const meta = parquetMetadata(bytes.slice().buffer);
  const m = meta.row_groups[0].columns.find((c) => c.meta_data!.path_in_schema[0] === "id")!
    .meta_data!;
  const from = Number(m.dictionary_page_offset ?? m.data_page_offset);
  const chunk = bytes.subarray(from, from + Number(m.total_compressed_size));
  for (const share of [0.1, 0.5, 0.9, 0.999]) {
    let taken: boolean;
    try {
      taken = decodeDictionaryChunk(
        chunk.subarray(0, Math.floor(chunk.length * share)),
        m,
        n,
        new StringDictionary(),
        new Int32Array(n),
        0,
      );
    } catch {
      taken = false; // readCodedChunks turns a throw into a fallback too
    }
    assert.equal(taken, false, `cut at ${share}`);
  }
});
