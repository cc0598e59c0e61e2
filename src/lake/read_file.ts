/**
 * Decodes one lake file into columns, fetching only the requested columns'
 * bytes (range reads through the store). INT64 columns come back as
 * Float64Array (exact up to 2^53), `timestamp` as epoch ms, strings as arrays
 * whose equal values share one string (dictionary pages). Anything wrong with
 * the file itself becomes a `LakeFileError` naming it; store faults stay
 * `StoreError`s, so callers can tell "retry" from "broken file".
 */
import { parquetMetadataAsync, parquetRead } from "hyparquet";
import type { AsyncBuffer, FileMetaData } from "hyparquet";
import { LakeFileError, StoreError } from "./errors.ts";
import { LAKE_COLUMNS, type LakeColumn, SCHEMA } from "./format.ts";
import type { ObjectStore } from "./store.ts";

export type ColumnArray = Float64Array | Int32Array | string[];
export type FileColumns = Partial<Record<LakeColumn, ColumnArray>>;

const NUMERIC = new Set<LakeColumn>(["timestamp", "bytes", "offset"]);

/** A fresh array for `n` values of a column. */
export function allocColumn(name: LakeColumn, n: number): ColumnArray {
  if (name === "partition") return new Int32Array(n);
  if (NUMERIC.has(name)) return new Float64Array(n);
  return new Array<string>(n);
}

const PARSERS = {
  // Numbers, not Dates: 3.6 M Date objects would cost more than the decode.
  timestampFromMilliseconds: (v: bigint) => Number(v),
};

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
 * With `out` undefined, allocates exactly.
 */
export async function readFileInto(
  store: ObjectStore,
  key: string,
  size: number,
  columns: readonly LakeColumn[],
  out?: { cols: FileColumns; at: number },
  known?: FileMetaData,
): Promise<{ rows: number; cols: FileColumns }> {
  const file = storeBuffer(store, key, size);
  try {
    const metadata = known ?? await parquetMetadataAsync(file);
    checkSchema(key, metadata, columns);
    const rows = Number(metadata.num_rows);
    const cols = out?.cols ?? Object.fromEntries(columns.map((c) => [c, allocColumn(c, rows)]));
    const at = out?.at ?? 0;
    const seen = Object.fromEntries(columns.map((c) => [c, 0]));
    await parquetRead({
      file,
      metadata,
      columns: [...columns],
      parsers: PARSERS,
      onChunk({ columnName, columnData, rowStart }) {
        const name = columnName as LakeColumn;
        const dst = cols[name];
        if (!dst) return;
        const base = at + rowStart;
        const n = columnData.length;
        if (dst instanceof Float64Array) {
          if (columnData instanceof BigInt64Array) {
            for (let i = 0; i < n; i++) dst[base + i] = Number(columnData[i]);
          } else {
            for (let i = 0; i < n; i++) dst[base + i] = Number(columnData[i]);
          }
        } else if (dst instanceof Int32Array) {
          dst.set(columnData as Int32Array, base);
        } else {
          for (let i = 0; i < n; i++) dst[base + i] = columnData[i] as string;
        }
        seen[name] += n;
      },
    });
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
