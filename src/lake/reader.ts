/**
 * The batch layer's view of the lake: one UTC hour, some columns, every event
 * exactly once. Only the hour's folder is listed and only the requested
 * columns are fetched and decoded. Files normally hold disjoint offset ranges
 * of their partition and are copied straight into preallocated columns; only
 * files whose ranges overlap (a compacted file beside its inputs for a moment,
 * a replay orphan) are merged and deduplicated by (partition, offset).
 */
import type { FileMetaData } from "hyparquet";
import { type EventColumns, LAKE_COLUMNS, type LakeColumn } from "./format.ts";
import { type FileName, hourPath, parseFileName } from "./paths.ts";
import {
  allocColumn,
  type ColumnArray,
  type FileColumns,
  isLakeColumn,
  readFileInto,
  readFileMetadata,
  StringDictionary,
} from "./read_file.ts";
import type { ObjectStore, StoreEntry } from "./store.ts";

export interface HourData {
  /** Rows after deduplication. Rows come in no particular order. */
  readonly rows: number;
  /**
   * One array per requested column, each `rows` long: `timestamp` (epoch ms),
   * `bytes` and `offset` as Float64Array, `partition` as Int32Array, strings
   * as arrays.
   */
  readonly columns: Partial<EventColumns>;
  /** Keys of the files read. */
  readonly files: string[];
  /** True when the hour has no lake files at all. */
  readonly missing: boolean;
  /** Duplicate rows dropped (overlapping files). */
  readonly duplicates: number;
}

export interface ReadHourOptions {
  /** Files fetched at once. Default 4. */
  readonly concurrency?: number;
  /**
   * How string columns come back: `"array"` (one string per row) or
   * `"dictionary"` (`DictionaryColumn`s: codes per row into the hour's
   * distinct values, each decoded once). Default `"array"`.
   */
  readonly strings?: "array" | "dictionary";
  /**
   * Told the hour's size once its files' footers are read, before any data:
   * rows (before deduplication) and files. May throw to stop the read (e.g.
   * an hour too large for this process).
   */
  readonly beforeRead?: (size: { rows: number; files: number }) => void;
}

/** The lake's string columns. */
export type StringColumn = "id" | "antenna_id" | "app";

/** A string column as codes: row i's value is `dict[codes[i]]`. */
export interface DictionaryColumn {
  /** The hour's distinct values (may hold some that no kept row uses). */
  readonly dict: readonly string[];
  readonly codes: Int32Array;
}

/** `HourData` with its string columns as `DictionaryColumn`s. */
export interface DictionaryHourData extends Omit<HourData, "columns"> {
  readonly columns:
    & Partial<Omit<EventColumns, StringColumn>>
    & Partial<Record<StringColumn, DictionaryColumn>>;
}

const STRING_COLUMNS: readonly LakeColumn[] = ["id", "antenna_id", "app"];

export interface LakeFile extends FileName {
  readonly key: string;
  readonly size: number;
}

/** The lake files of an hour folder (other names are ignored). */
export async function listHour(store: ObjectStore, hourStartMs: number): Promise<LakeFile[]> {
  const entries: StoreEntry[] = await store.list(hourPath(hourStartMs));
  const out: LakeFile[] = [];
  for (const e of entries) {
    const name = parseFileName(e.key);
    if (name) out.push({ ...name, key: e.key, size: e.size });
  }
  return out;
}

/**
 * Groups files into runs of overlapping offset ranges, per partition. A run of
 * one file needs no deduplication.
 */
export function overlapRuns(files: readonly LakeFile[]): LakeFile[][] {
  const sorted = [...files].sort((a, b) =>
    a.partition - b.partition || a.firstOffset - b.firstOffset || a.lastOffset - b.lastOffset
  );
  const runs: LakeFile[][] = [];
  let run: LakeFile[] = [];
  let maxLast = -1;
  for (const f of sorted) {
    if (run.length && f.partition === run[0].partition && f.firstOffset <= maxLast) {
      run.push(f);
      maxLast = Math.max(maxLast, f.lastOffset);
    } else {
      if (run.length) runs.push(run);
      run = [f];
      maxLast = f.lastOffset;
    }
  }
  if (run.length) runs.push(run);
  return runs;
}

async function pool<T>(items: readonly T[], limit: number, fn: (t: T) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Merges overlapping files' rows by offset, keeping the first copy of each,
 * into `out` from row `at`. Returns the rows kept.
 */
export function mergeDedupe(
  parts: readonly { rows: number; cols: FileColumns }[],
  columns: readonly LakeColumn[],
  out: FileColumns,
  at: number,
): number {
  const total = parts.reduce((n, p) => n + p.rows, 0);
  if (ascendingApart(parts)) {
    // The usual case for compaction: disjoint files in offset order. Copy.
    let n = at;
    for (const p of parts) {
      for (const c of columns) copyInto(out[c]!, p.cols[c]!, p.rows, n);
      n += p.rows;
    }
    return total;
  }
  const file = new Uint32Array(total);
  const row = new Uint32Array(total);
  const off = new Float64Array(total);
  let k = 0;
  parts.forEach((p, i) => {
    const o = p.cols.offset as Float64Array;
    for (let r = 0; r < p.rows; r++, k++) {
      file[k] = i;
      row[k] = r;
      off[k] = o[r];
    }
  });
  const order = Array.from({ length: total }, (_, i) => i).sort((a, b) => off[a] - off[b] || a - b);
  let n = 0;
  let prev = -1;
  for (const i of order) {
    if (off[i] === prev) continue;
    prev = off[i];
    const src = parts[file[i]].cols;
    for (const c of columns) {
      (out[c] as { [i: number]: unknown })[at + n] = (src[c] as ArrayLike<unknown>)[row[i]];
    }
    n++;
  }
  return n;
}

/** True when each part's offsets all lie above the previous part's. */
function ascendingApart(parts: readonly { rows: number; cols: FileColumns }[]): boolean {
  let prev = -1;
  for (const p of parts) {
    if (p.rows === 0) continue;
    const o = p.cols.offset as Float64Array;
    if (o[0] <= prev) return false;
    for (let i = 1; i < p.rows; i++) if (o[i] <= o[i - 1]) return false;
    prev = o[p.rows - 1];
  }
  return true;
}

function copyInto(dst: ColumnArray, src: ColumnArray, n: number, at: number): void {
  if (Array.isArray(dst)) {
    for (let i = 0; i < n; i++) dst[at + i] = (src as string[])[i];
  } else {
    (dst as Float64Array).set((src as Float64Array).subarray(0, n), at);
  }
}

function trim(col: ColumnArray, n: number): ColumnArray {
  if (Array.isArray(col)) {
    col.length = n;
    return col;
  }
  return col.length === n ? col : col.subarray(0, n);
}

/**
 * Reads one UTC hour of the lake.
 *
 * @example const h = await readHour(store, Date.UTC(2026, 10, 28, 10), ["id", "bytes"]);
 * @example
 * const h = await readHour(store, hour, ["id", "bytes"], { strings: "dictionary" });
 * h.columns.id!.dict[h.columns.id!.codes[0]] // the first row's device id
 */
export function readHour(
  store: ObjectStore,
  hourStartMs: number,
  columns?: readonly string[],
  options?: ReadHourOptions & { readonly strings?: "array" },
): Promise<HourData>;
export function readHour(
  store: ObjectStore,
  hourStartMs: number,
  columns: readonly string[] | undefined,
  options: ReadHourOptions & { readonly strings: "dictionary" },
): Promise<DictionaryHourData>;
export function readHour(
  store: ObjectStore,
  hourStartMs: number,
  columns?: readonly string[],
  options?: ReadHourOptions,
): Promise<HourData | DictionaryHourData>;
export async function readHour(
  store: ObjectStore,
  hourStartMs: number,
  columns: readonly string[] = LAKE_COLUMNS,
  options: ReadHourOptions = {},
): Promise<HourData | DictionaryHourData> {
  const bad = columns.filter((c) => !isLakeColumn(c));
  if (bad.length) throw new TypeError(`Unknown lake column(s): ${bad.join(", ")}`);
  const want = [...new Set(columns)] as LakeColumn[];
  const dicts: Partial<Record<LakeColumn, StringDictionary>> = {};
  if (options.strings === "dictionary") {
    for (const c of want) if (STRING_COLUMNS.includes(c)) dicts[c] = new StringDictionary();
  }
  const coded = (c: LakeColumn) => dicts[c] !== undefined;
  // Codes go through the reader as Int32Array columns; wrapped at the end.
  const finish = (c: LakeColumn, col: ColumnArray) =>
    coded(c) ? { dict: dicts[c]!.values, codes: col as Int32Array } : col;
  const files = await listHour(store, hourStartMs);
  if (files.length === 0) {
    return {
      rows: 0,
      columns: Object.fromEntries(want.map((c) => [c, finish(c, allocColumn(c, 0, coded(c)))])),
      files: [],
      missing: true,
      duplicates: 0,
    };
  }
  const concurrency = options.concurrency ?? 4;
  const metas = new Map<string, FileMetaData>();
  await pool(files, concurrency, async (f) => {
    metas.set(f.key, await readFileMetadata(store, f.key, f.size));
  });
  const rowsOf = (f: LakeFile) => Number(metas.get(f.key)!.num_rows);
  const runs = overlapRuns(files);
  const single = runs.filter((r) => r.length === 1).map((r) => r[0]);
  const merged = runs.filter((r) => r.length > 1);
  const capacity = files.reduce((n, f) => n + rowsOf(f), 0);
  options.beforeRead?.({ rows: capacity, files: files.length });
  const out: FileColumns = Object.fromEntries(
    want.map((c) => [c, allocColumn(c, capacity, coded(c))]),
  );

  // Disjoint files go straight to their slot.
  const slots: { f: LakeFile; at: number }[] = [];
  let at = 0;
  for (const f of single) {
    slots.push({ f, at });
    at += rowsOf(f);
  }
  await pool(slots, concurrency, async ({ f, at }) => {
    await readFileInto(store, f.key, f.size, want, { cols: out, at }, metas.get(f.key), dicts);
  });

  // Overlapping runs: read each file whole (with offsets), then merge.
  let duplicates = 0;
  const need = want.includes("offset") ? want : [...want, "offset" as const];
  for (const run of merged) {
    const parts: { rows: number; cols: FileColumns }[] = new Array(run.length);
    await pool(run.map((f, i) => ({ f, i })), concurrency, async ({ f, i }) => {
      parts[i] = await readFileInto(store, f.key, f.size, need, undefined, metas.get(f.key), dicts);
    });
    const kept = mergeDedupe(parts, want, out, at);
    duplicates += parts.reduce((n, p) => n + p.rows, 0) - kept;
    at += kept;
  }
  const columnsOut = Object.fromEntries(want.map((c) => [c, finish(c, trim(out[c]!, at))]));
  return {
    rows: at,
    columns: columnsOut,
    files: files.map((f) => f.key),
    missing: false,
    duplicates,
  };
}
