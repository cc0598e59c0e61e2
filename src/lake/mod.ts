/**
 * The raw-event lake: Parquet files in Hive-style hour folders on a local
 * folder or GCS. The speed layer writes it through `LakeWriter` (rolling,
 * crash-safe segments) and compacts finished hours with `compactHour`; the
 * batch layer reads one hour at a time with `readHour`.
 */
export type { ObjectStore, PutOptions, StoreEntry } from "./store.ts";
export { LocalStore } from "./local_store.ts";
export { GcsStore, type GcsStoreOptions } from "./gcs_store.ts";
export { openStore } from "./open_store.ts";
export { LakeFileError, StoreError, type StoreErrorKind, type StoreOp } from "./errors.ts";
export {
  allocColumns,
  encodeColumns,
  type EventColumns,
  eventsToColumns,
  LAKE_COLUMNS,
  type LakeColumn,
  pickRows,
} from "./format.ts";
export { type FileName, hourPath, parseFileName, parseHourPath, segmentFileName } from "./paths.ts";
export { LakeWriter, LakeWriterAbortedError, type LakeWriterOptions } from "./writer.ts";
export {
  type DictionaryColumn,
  type DictionaryHourData,
  type HourData,
  type LakeFile,
  listHour,
  readHour,
  type ReadHourOptions,
} from "./reader.ts";
export type { ColumnArray } from "./read_file.ts";
export {
  type EventChunk,
  listPartitionFiles,
  type PartitionFile,
  type PartitionStreamOptions,
  streamPartition,
} from "./partition_stream.ts";
export {
  compactHour,
  type CompactOptions,
  type CompactResult,
  COPY_MIN_AVERAGE_ROWS,
  unfinishedCompactions,
} from "./compact.ts";
export { intentKey, STAGING_PREFIX } from "./intent.ts";
