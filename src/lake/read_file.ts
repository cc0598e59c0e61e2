/**
 * Decodes one lake file into columns, fetching only the requested columns'
 * bytes (range reads through the store). INT64 columns come back as
 * Float64Array (exact up to 2^53), `timestamp` as epoch ms, strings as arrays
 * whose equal values share one string (dictionary pages), or, given a
 * `StringDictionary`, as Int32Array codes into it: each distinct string of a
 * file's dictionary page is decoded and looked up once, not once per row, and
 * the codes are shared by every file read with the same dictionary. Anything wrong with
 * the file itself becomes a `LakeFileError` naming it; store faults stay
 * `StoreError`s, so callers can tell "retry" from "broken file".
 */
import { parquetMetadataAsync, parquetRead } from "hyparquet";
import type { AsyncBuffer, ColumnData, FileMetaData } from "hyparquet";
import { decodeDictionaryChunk } from "./dictionary_column.ts";
import { LakeFileError, StoreError } from "./errors.ts";
import { LAKE_COLUMNS, type LakeColumn, SCHEMA } from "./format.ts";
import type { ObjectStore } from "./store.ts";

export type ColumnArray = Float64Array | Int32Array | string[];
export type FileColumns = Partial<Record<LakeColumn, ColumnArray>>;

const NUMERIC = new Set<LakeColumn>(["timestamp", "bytes", "offset"]);

/** A fresh array for `n` values of a column (codes when `coded`). */
export function allocColumn(name: LakeColumn, n: number, coded = false): ColumnArray {
  if (name === "partition" || coded) return new Int32Array(n);
  if (NUMERIC.has(name)) return new Float64Array(n);
  return new Array<string>(n);
}

const PARSERS = {
  // Numbers, not Dates: 3.6 M Date objects would cost more than the decode.
  timestampFromMilliseconds: (v: bigint) => Number(v),
};

/**
 * The distinct values of a string column and their codes (0, 1, …, in first
 * seen order). Every value is one string object, however many files hold it.
 * Values are looked up by their UTF-8 bytes in an open-addressing table, so a
 * value already seen costs a hash of its bytes and no string at all: far
 * cheaper than decoding it and probing a Map with a fresh string.
 */
export class StringDictionary {
  /** Code → value. */
  readonly values: string[] = [];
  #bytes = new Uint8Array(1 << 16);
  #used = 0;
  #start = new Int32Array(1 << 10);
  #hash = new Int32Array(1 << 10);
  #slots = new Int32Array(1 << 11).fill(-1);

  /** The code of `value`, added if new. */
  code(value: string): number {
    return this.codeOfBytes(encoder.encode(value));
  }

  /** The code of the UTF-8 string `bytes`, added if new. */
  codeOfBytes(bytes: Uint8Array): number {
    return this.codeOfRange(bytes, 0, bytes.length);
  }

  /** The code of the UTF-8 string `buf[start, end)`, added if new. */
  codeOfRange(buf: Uint8Array, start: number, end: number): number {
    const n = end - start;
    let h = 0x811c9dc5 ^ n;
    for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193);
    const slots = this.#slots;
    const mask = slots.length - 1;
    for (let s = h & mask;; s = (s + 1) & mask) {
      const c = slots[s];
      if (c < 0) return this.#add(buf.subarray(start, end), h, s);
      if (this.#hash[c] === h && this.#equals(c, buf, start, n)) return c;
    }
  }

  #equals(c: number, buf: Uint8Array, start: number, n: number): boolean {
    const from = this.#start[c];
    if (this.#start[c + 1] - from !== n) return false;
    const stored = this.#bytes;
    for (let i = 0; i < n; i++) if (stored[from + i] !== buf[start + i]) return false;
    return true;
  }

  #add(bytes: Uint8Array, h: number, slot: number): number {
    const c = this.values.length;
    this.values.push(utf8.decode(bytes));
    if (this.#used + bytes.length > this.#bytes.length) {
      this.#bytes = grow(this.#bytes, this.#used + bytes.length);
    }
    this.#bytes.set(bytes, this.#used);
    this.#used += bytes.length;
    if (c + 2 > this.#start.length) {
      this.#start = grow(this.#start, c + 2);
      this.#hash = grow(this.#hash, c + 2);
    }
    this.#start[c + 1] = this.#used;
    this.#hash[c] = h;
    this.#slots[slot] = c;
    // Keep the table at most half full: short probes.
    if ((c + 1) * 2 > this.#slots.length) this.#rehash();
    return c;
  }

  #rehash(): void {
    const slots = new Int32Array(this.#slots.length * 2).fill(-1);
    const mask = slots.length - 1;
    for (let c = 0; c < this.values.length; c++) {
      let s = this.#hash[c] & mask;
      while (slots[s] >= 0) s = (s + 1) & mask;
      slots[s] = c;
    }
    this.#slots = slots;
  }
}

function grow<T extends Uint8Array | Int32Array>(a: T, atLeast: number): T {
  let size = a.length * 2;
  while (size < atLeast) size *= 2;
  const b = new (a.constructor as new (n: number) => T)(size);
  b.set(a);
  return b;
}

const encoder = new TextEncoder();
const utf8 = new TextDecoder();

function storeBuffer(store: ObjectStore, key: string, size: number): AsyncBuffer {
  return {
    byteLength: size,
    async slice(start: number, end?: number): Promise<ArrayBuffer> {
      const to = end ?? size;
      const bytes = await store.read(key, start, to);
      if (bytes.length !== to - start) {
        throw new LakeFileError(key, `short read: ${bytes.length} of ${to - start} bytes`);
      }
      return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
        ? bytes.buffer as ArrayBuffer
        : bytes.slice().buffer as ArrayBuffer;
    },
  };
}

function checkSchema(key: string, metadata: FileMetaData, columns: readonly LakeColumn[]): void {
  for (const name of columns) {
    const want = SCHEMA.find((e) => e.name === name)!;
    const got = metadata.schema.find((e) => e.name === name);
    if (!got) throw new LakeFileError(key, `column "${name}" is missing`);
    if (got.type !== want.type) {
      throw new LakeFileError(key, `column "${name}" is ${got.type}, expected ${want.type}`);
    }
  }
}

/**
 * Reads `columns` of the file at `key` (`size` bytes) into `out` starting at
 * row `at` (arrays from `allocColumn`, large enough), returning the row count.
 * With `out` undefined, allocates exactly. String columns with an entry in
 * `dictionaries` are read as codes into it (Int32Array columns).
 */
export async function readFileInto(
  store: ObjectStore,
  key: string,
  size: number,
  columns: readonly LakeColumn[],
  out?: { cols: FileColumns; at: number },
  known?: FileMetaData,
  dictionaries: Partial<Record<LakeColumn, StringDictionary>> = {},
): Promise<{ rows: number; cols: FileColumns }> {
  return await readRowsInto(store, key, size, columns, undefined, out, known, dictionaries);
}

/**
 * `readFileInto` for the rows `[range.start, range.end)` of the file only (all
 * rows when `range` is undefined): only the pages holding them are fetched and
 * decoded, so a large file can be read a slice at a time. Row `range.start`
 * lands at `out.at`.
 */
export async function readRowsInto(
  store: ObjectStore,
  key: string,
  size: number,
  columns: readonly LakeColumn[],
  range?: { readonly start: number; readonly end: number },
  out?: { cols: FileColumns; at: number },
  known?: FileMetaData,
  dictionaries: Partial<Record<LakeColumn, StringDictionary>> = {},
): Promise<{ rows: number; cols: FileColumns }> {
  const file = storeBuffer(store, key, size);
  try {
    const metadata = known ?? await parquetMetadataAsync(file);
    checkSchema(key, metadata, columns);
    const fileRows = Number(metadata.num_rows);
    const start = Math.min(range?.start ?? 0, fileRows);
    const end = Math.min(range?.end ?? fileRows, fileRows);
    const rows = Math.max(0, end - start);
    const cols = out?.cols ??
      Object.fromEntries(
        columns.map((c) => [c, allocColumn(c, rows, dictionaries[c] !== undefined)]),
      );
    const at = out?.at ?? 0;
    const seen = Object.fromEntries(columns.map((c) => [c, 0]));
    const onChunk = ({ columnName, columnData, rowStart }: ColumnData) => {
      const name = columnName as LakeColumn;
      const dst = cols[name];
      if (!dst) return;
      // Chunks are whole pages: keep only their rows inside the range.
      const from = Math.max(start - rowStart, 0);
      const to = Math.min(end - rowStart, columnData.length);
      if (to <= from) return;
      const base = at + rowStart - start;
      if (dst instanceof Float64Array) {
        if (columnData instanceof BigInt64Array) {
          for (let i = from; i < to; i++) dst[base + i] = Number(columnData[i]);
        } else {
          for (let i = from; i < to; i++) dst[base + i] = Number(columnData[i]);
        }
      } else if (dst instanceof Int32Array) {
        const src = columnData as Int32Array;
        if (from === 0 && to === src.length) dst.set(src, base);
        else for (let i = from; i < to; i++) dst[base + i] = src[i];
      } else {
        for (let i = from; i < to; i++) dst[base + i] = columnData[i] as string;
      }
      seen[name] += to - from;
    };
    const read = { file, metadata, rowStart: start, rowEnd: end, onChunk };
    const plain = columns.filter((c) => dictionaries[c] === undefined);
    if (plain.length && rows > 0) {
      await parquetRead({ ...read, columns: plain, parsers: PARSERS });
    }
    // One read per coded column: the string parser is per read, and it turns
    // each dictionary entry (or plain value) into its code. A whole file in
    // the lake writer's layout takes the fast path (dictionary_column.ts).
    for (const c of columns) {
      const dict = dictionaries[c];
      if (!dict || rows === 0) continue;
      if (start === 0 && end === fileRows) {
        const dst = cols[c] as Int32Array;
        if (await readCodedChunks(file, metadata, c, dict, dst, at)) {
          seen[c] += rows;
          continue;
        }
      }
      const parsers = { ...PARSERS, stringFromBytes: (b: Uint8Array) => dict.codeOfBytes(b) };
      await parquetRead({ ...read, columns: [c], parsers });
    }
    for (const c of columns) {
      if (seen[c] !== rows) {
        throw new LakeFileError(key, `column "${c}" has ${seen[c]} values, expected ${rows}`);
      }
    }
    return { rows, cols };
  } catch (err) {
    if (err instanceof LakeFileError || err instanceof StoreError) throw err;
    throw new LakeFileError(key, (err as Error)?.message ?? String(err), { cause: err });
  }
}

/**
 * Every row group's chunk of the string column `name` as codes of `dict`
 * into `out` from `at`, through the fast path; false as soon as a chunk is
 * not in its layout (the caller then reads the column through hyparquet,
 * overwriting whatever was written).
 */
async function readCodedChunks(
  file: AsyncBuffer,
  metadata: FileMetaData,
  name: LakeColumn,
  dict: StringDictionary,
  out: Int32Array,
  at: number,
): Promise<boolean> {
  let row = at;
  for (const group of metadata.row_groups) {
    const meta = group.columns.find((c) => c.meta_data?.path_in_schema.join(".") === name)
      ?.meta_data;
    if (!meta) return false;
    // The dictionary page comes first; an offset of 0 (the file's magic) means none.
    const data = Number(meta.data_page_offset);
    const dictAt = Number(meta.dictionary_page_offset ?? 0);
    const from = dictAt > 0 ? Math.min(dictAt, data) : data;
    const bytes = new Uint8Array(await file.slice(from, from + Number(meta.total_compressed_size)));
    const rows = Number(group.num_rows);
    try {
      if (!decodeDictionaryChunk(bytes, meta, rows, dict, out, row)) return false;
    } catch {
      return false; // not this layout after all: hyparquet reads it, or says what is wrong
    }
    row += rows;
  }
  return true;
}

/** The footer of a lake file (its row count and schema). */
export async function readFileMetadata(
  store: ObjectStore,
  key: string,
  size: number,
): Promise<FileMetaData> {
  try {
    // A small first fetch: lake footers are a few KB, and a miss costs one more read.
    return await parquetMetadataAsync(storeBuffer(store, key, size), { initialFetchSize: 1 << 16 });
  } catch (err) {
    if (err instanceof LakeFileError || err instanceof StoreError) throw err;
    throw new LakeFileError(key, (err as Error)?.message ?? String(err), { cause: err });
  }
}

export function isLakeColumn(name: string): name is LakeColumn {
  return (LAKE_COLUMNS as readonly string[]).includes(name);
}
