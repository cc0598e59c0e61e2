/**
 * The lake's Parquet file format: one row per valid event, seven required
 * columns, rows sorted by Kafka offset. Encoding goes through hyparquet-writer
 * with an explicit schema so the types never depend on guessing from data:
 * `timestamp` is INT64 TIMESTAMP(MILLIS, UTC), `bytes` and `offset` INT64,
 * `partition` INT32, the rest UTF-8 strings. Events travel between the writer,
 * the reader and compaction as `EventColumns` (typed arrays, no per-row
 * objects), which is what keeps a 3.6 M-row hour cheap.
 */
import { ByteWriter, type parquetWrite, ParquetWriter } from "hyparquet-writer";
import type { ColumnSource } from "hyparquet-writer";
import type { SourcedEvent } from "../core/event.ts";

/** Column names, in file order. */
export const LAKE_COLUMNS = [
  "timestamp",
  "id",
  "antenna_id",
  "app",
  "bytes",
  "partition",
  "offset",
] as const;
export type LakeColumn = typeof LAKE_COLUMNS[number];

/**
 * Events as columns. `timestamp` is epoch milliseconds (the wire's seconds
 * times 1000); `bytes` and `offset` are exact as numbers up to 2^53.
 */
export interface EventColumns {
  timestamp: Float64Array;
  id: string[];
  antenna_id: string[];
  app: string[];
  bytes: Float64Array;
  partition: Int32Array;
  offset: Float64Array;
}

// The writer pins its own hyparquet for types; take the element type from it.
type SchemaElement = NonNullable<Parameters<typeof parquetWrite>[0]["schema"]>[number];

export const SCHEMA: SchemaElement[] = [
  { name: "root", num_children: LAKE_COLUMNS.length },
  {
    name: "timestamp",
    type: "INT64",
    repetition_type: "REQUIRED",
    // Both annotations: the logical type for current readers, the converted
    // type for older ones (Spark 2, Hive).
    converted_type: "TIMESTAMP_MILLIS",
    logical_type: { type: "TIMESTAMP", isAdjustedToUTC: true, unit: "MILLIS" },
  },
  ...(["id", "antenna_id", "app"] as const).map((name): SchemaElement => ({
    name,
    type: "BYTE_ARRAY",
    repetition_type: "REQUIRED",
    converted_type: "UTF8",
    logical_type: { type: "STRING" },
  })),
  { name: "bytes", type: "INT64", repetition_type: "REQUIRED" },
  { name: "partition", type: "INT32", repetition_type: "REQUIRED" },
  { name: "offset", type: "INT64", repetition_type: "REQUIRED" },
];

/** The footer's `created_by` of every lake file. */
export const CREATED_BY = "antenna-lambda lake";

/** Rows per row group: big enough that a dictionary of 100,000 device ids pays off. */
export const ROW_GROUP_SIZE = 1_000_000;

/** Empty columns with room for `n` rows. */
export function allocColumns(n: number): EventColumns {
  return {
    timestamp: new Float64Array(n),
    id: new Array<string>(n),
    antenna_id: new Array<string>(n),
    app: new Array<string>(n),
    bytes: new Float64Array(n),
    partition: new Int32Array(n),
    offset: new Float64Array(n),
  };
}

/** The given rows of `cols` (in that order) as new columns. */
export function pickRows(cols: EventColumns, rows: ArrayLike<number>): EventColumns {
  const c = allocColumns(rows.length);
  for (let j = 0; j < rows.length; j++) {
    const i = rows[j];
    c.timestamp[j] = cols.timestamp[i];
    c.id[j] = cols.id[i];
    c.antenna_id[j] = cols.antenna_id[i];
    c.app[j] = cols.app[i];
    c.bytes[j] = cols.bytes[i];
    c.partition[j] = cols.partition[i];
    c.offset[j] = cols.offset[i];
  }
  return c;
}

/** Events (already in offset order) as columns. */
export function eventsToColumns(events: readonly SourcedEvent[]): EventColumns {
  const c = allocColumns(events.length);
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    c.timestamp[i] = Math.round(e.timestamp * 1000);
    c.id[i] = e.id;
    c.antenna_id[i] = e.antenna_id;
    c.app[i] = e.app;
    c.bytes[i] = e.bytes;
    c.partition[i] = e.partition;
    c.offset[i] = e.offset;
  }
  return c;
}

function toBigInts(values: Float64Array, n: number): BigInt64Array {
  const out = new BigInt64Array(n);
  for (let i = 0; i < n; i++) out[i] = BigInt(values[i]);
  return out;
}

export interface EncodeOptions {
  /** Default `SNAPPY` (hyparquet reads it natively). */
  codec?: "SNAPPY" | "UNCOMPRESSED";
  /** Default `ROW_GROUP_SIZE`. */
  rowGroupSize?: number;
}

/**
 * The first `rows` rows of `cols` as a complete Parquet file. The caller
 * guarantees offset order.
 */
export function encodeColumns(
  cols: EventColumns,
  rows: number,
  options: EncodeOptions = {},
): Uint8Array {
  const file = new LakeFileEncoder(options);
  file.write(cols, rows);
  // A copy that fits: writers hold these bytes until the store has them.
  return file.finish().slice();
}

export interface LakeFileEncoderOptions extends EncodeOptions {
  /** Initial size of the output buffer, which doubles when full. Default 1 KB. */
  initialBytes?: number;
}

/**
 * A lake file built a batch of rows at a time, for callers that cannot hold
 * all its rows decoded at once (compaction): only the encoded bytes
 * accumulate. A `write` of at most `rowGroupSize` rows becomes exactly one
 * row group, so writing a file's rows in batches of `rowGroupSize` gives the
 * same bytes as `encodeColumns` of all of them at once.
 *
 * @example
 * const file = new LakeFileEncoder();
 * for (const b of batches) file.write(b.cols, b.rows);
 * await store.put(key, file.finish());
 */
export class LakeFileEncoder {
  readonly rowGroupSize: number;
  readonly #bytes: ByteWriter;
  readonly #parquet: ParquetWriter;
  #rows = 0;

  constructor(options: LakeFileEncoderOptions = {}) {
    this.rowGroupSize = options.rowGroupSize ?? ROW_GROUP_SIZE;
    this.#bytes = new ByteWriter(Math.max(1024, options.initialBytes ?? 0));
    this.#parquet = new ParquetWriter({
      writer: this.#bytes,
      schema: SCHEMA,
      codec: options.codec ?? "SNAPPY",
      createdBy: CREATED_BY,
      // Min/max statistics are a large share of the encode time (BENCHMARKS.md,
      // "Measurements behind the code") and nothing reads them: a file's offset
      // range is in its name, its hour in its folder.
      statistics: false,
    });
  }

  /** Rows written so far. */
  get rows(): number {
    return this.#rows;
  }

  /** Appends the first `rows` rows of `cols`, which continue the file's offset order. */
  write(cols: EventColumns, rows: number): void {
    if (rows === 0) return;
    // Synchronous (a ByteWriter has no flush): nothing of `cols` is kept.
    void this.#parquet.write({
      columnData: columnSources(cols, rows),
      rowGroupSize: this.rowGroupSize,
    });
    this.#rows += rows;
  }

  /** Ends the file and returns its bytes (a view of the encoder's buffer). */
  finish(): Uint8Array {
    void this.#parquet.finish();
    return this.#bytes.getBytes();
  }
}

/** The writer's view of the first `rows` rows of `cols`, in the lake's encodings. */
function columnSources(cols: EventColumns, rows: number): ColumnSource[] {
  const strings = (a: string[]) => (a.length === rows ? a : a.slice(0, rows));
  return [
    // Near-sorted times and strictly increasing offsets: delta encoding makes
    // them almost free on disk.
    { name: "timestamp", data: toBigInts(cols.timestamp, rows), encoding: "DELTA_BINARY_PACKED" },
    // Forced dictionaries: few distinct values per row group, and the reader
    // then decodes each distinct string once instead of once per row.
    { name: "id", data: strings(cols.id), encoding: "RLE_DICTIONARY" },
    { name: "antenna_id", data: strings(cols.antenna_id), encoding: "RLE_DICTIONARY" },
    { name: "app", data: strings(cols.app), encoding: "RLE_DICTIONARY" },
    // Byte counts barely compress and the writer's JS snappy is slow on them:
    // plain and uncompressed is the fastest to write and read.
    { name: "bytes", data: toBigInts(cols.bytes, rows), encoding: "PLAIN", codec: "UNCOMPRESSED" },
    { name: "partition", data: cols.partition.subarray(0, rows) },
    { name: "offset", data: toBigInts(cols.offset, rows), encoding: "DELTA_BINARY_PACKED" },
  ];
}

/** Rough encoded size of one event, for the writer's size-based roll. */
export function estimateEventBytes(e: SourcedEvent): number {
  // Three INT64 and one INT32 column, plus the strings with their length prefix.
  return 28 + e.id.length + e.antenna_id.length + e.app.length + 12;
}
