/**
 * Compaction of a finished hour: the many small files one Kafka partition
 * wrote into an hour folder become one file, named by the smallest first and
 * largest last offset, rows sorted by offset and deduplicated. The new file is
 * written whole before any input is deleted; in between, readers see
 * overlapping ranges and deduplicate, so they stay exactly-once throughout.
 * A crash leaves at worst extra inputs, which the next run merges again.
 *
 * It runs on the speed layer's thread and every event goes through it once,
 * so the usual case is made nearly free: when the inputs are disjoint in
 * offsets (their names say so; overlaps only follow a crash or a replay) and
 * average `COPY_MIN_AVERAGE_ROWS` rows or more (full segments), their row
 * groups are copied byte for byte into the output, in offset order, under a
 * new footer (see copy_row_groups.ts): nothing is decoded or re-encoded, and
 * the output has the inputs' row groups. Each input is read whole in turn;
 * the output grows to the inputs' total size.
 *
 * Otherwise the rows are merged, in memory bounded by one output row group,
 * not by the hour: the inputs are merged by offset a slice of rows at a time
 * (each input is opened only when the merge reaches its first offset, and
 * dropped once read), and every `rowGroupSize` merged rows are encoded into
 * the output as one row group. Small disjoint inputs (a slow stream's files,
 * rolled by age) are thus streamed one after the other into few, large row
 * groups. Overlapping ones (a replay orphan, or a compacted file beside the
 * inputs a crash left) take the same path: the decoded rows held at once are
 * one row group plus a slice per input overlapping at the merge point,
 * however large the overlap. What grows with the hour is the encoded output
 * (about 20 bytes a row, which the put needs whole) and one copy of each
 * distinct string. The merge also checks each input's rows are in offset
 * order within its name; a copy trusts the names, which the writer takes from
 * the rows.
 */
import { LakeFileError } from "./errors.ts";
import { allocColumns, type EventColumns, LAKE_COLUMNS, LakeFileEncoder } from "./format.ts";
import { canCopyRowGroups, RowGroupCopier } from "./copy_row_groups.ts";
import { STAGING_PREFIX } from "./intent.ts";
import { hourPath, segmentFileName } from "./paths.ts";
import { readFileMetadata } from "./read_file.ts";
import {
  checkedFirst,
  type Dictionaries,
  newDictionaries,
  SliceInput as Input,
  STRING_COLUMNS,
} from "./slice_input.ts";
import { type LakeFile, listHour } from "./reader.ts";
import type { ObjectStore } from "./store.ts";

export interface CompactResult {
  /** Files merged; 0 when there was nothing to do (no file, or already one). */
  readonly inputs: number;
  /** Key of the file written. */
  readonly output?: string;
  /** Rows in the output. */
  readonly rows?: number;
}

/**
 * Average rows per input from which disjoint inputs are compacted by copying
 * their row groups rather than re-encoding their rows. The speed layer's full
 * segments (`lake.roll.max_rows`, 50,000 rows by default) are well above it,
 * so an hour of a busy partition (the bulk of all events) is copied. A slow
 * stream rolls small files by age instead: copied, they would leave an hour of
 * many small row groups, each repeating its dictionaries and costing readers
 * a round of page reads, while merging them re-encodes few rows. The odd short
 * segment among full ones (a cut at the hour's end, a restart) is carried along.
 */
export const COPY_MIN_AVERAGE_ROWS = 20_000;

export interface CompactOptions {
  /**
   * Disjoint inputs averaging at least this many rows are copied row group by
   * row group instead of merged. Default `COPY_MIN_AVERAGE_ROWS`.
   */
  readonly copyMinAverageRows?: number;
  /**
   * Rows per row group of the output of a merge (copies keep the inputs' row
   * groups). Default `ROW_GROUP_SIZE`, as in the writer's files.
   */
  readonly rowGroupSize?: number;
  /** Rows of an input decoded at a time. Default 262,144. */
  readonly sliceRows?: number;
  /**
   * Called after each slice of an input is decoded, with its rows and the
   * number of inputs then holding a decoded slice. For tests and
   * measurements. Default none.
   */
  readonly onSlice?: (slice: { key: string; rows: number; open: number }) => void;
}

/**
 * Compacts the files of one partition in an hour folder into one: their row
 * groups copied when they are disjoint, full-size segments, their rows merged
 * otherwise (see the module comment).
 *
 * @example await compactHour(store, Date.UTC(2026, 10, 28, 10), 3)
 */
export async function compactHour(
  store: ObjectStore,
  hourStartMs: number,
  partition: number,
  options: CompactOptions = {},
): Promise<CompactResult> {
  const files = (await listHour(store, hourStartMs)).filter((f) => f.partition === partition);
  if (files.length <= 1) return { inputs: 0 };
  const metas = await Promise.all(files.map((f) => readFileMetadata(store, f.key, f.size)));
  const inputs = files
    .map((file, i) => ({ file, metadata: metas[i], rows: Number(metas[i].num_rows) }))
    .sort((a, b) =>
      a.file.firstOffset - b.file.firstOffset || a.file.lastOffset - b.file.lastOffset
    );
  const inputRows = inputs.reduce((n, f) => n + f.rows, 0);
  const first = inputs[0].file.firstOffset;
  const lastOffset = Math.max(...files.map((f) => f.lastOffset));
  const output = hourPath(hourStartMs) + segmentFileName(partition, first, lastOffset);

  const copyMin = options.copyMinAverageRows ?? COPY_MIN_AVERAGE_ROWS;
  const disjoint = inputs.every((f, i) =>
    i === 0 || f.file.firstOffset > inputs[i - 1].file.lastOffset
  );
  if (
    disjoint && inputRows >= copyMin * inputs.length &&
    inputs.every((f) => canCopyRowGroups(f.metadata))
  ) {
    const copier = new RowGroupCopier(files.reduce((n, f) => n + f.size, 0));
    for (const { file, metadata } of inputs) {
      copier.add(file.key, await store.get(file.key), metadata);
    }
    await replace(store, hourStartMs, partition, files, output, copier.finish());
    return { inputs: files.length, output, rows: copier.rows };
  }
  return await merge(store, hourStartMs, partition, files, inputs, inputRows, output, options);
}

/** The merge path: inputs decoded a slice at a time, merged by offset and encoded. */
async function merge(
  store: ObjectStore,
  hourStartMs: number,
  partition: number,
  files: LakeFile[],
  inputs: { file: LakeFile; rows: number }[],
  inputRows: number,
  output: string,
  options: CompactOptions,
): Promise<CompactResult> {
  const sliceRows = options.sliceRows ?? 262_144;
  const pending = inputs.map((f) => new Input(f.file, LAKE_COLUMNS, f.rows));

  // Each distinct string is decoded once for the whole hour; slices hold codes.
  const dicts = newDictionaries();
  const encoder = new LakeFileEncoder({
    rowGroupSize: options.rowGroupSize,
    // Enough for the output unless the inputs overlap a lot; pages never
    // written to cost no memory.
    initialBytes: files.reduce((n, f) => n + f.size, 0),
  });
  const group: EventColumns = allocColumns(Math.min(encoder.rowGroupSize, inputRows));
  let filled = 0;
  let last = -1;
  const active: Input[] = [];
  let next = 0;

  const load = async (input: Input, opening: boolean) => {
    if (!await input.load(store, sliceRows, dicts)) return false;
    options.onSlice?.({ key: input.file.key, rows: input.n, open: active.length + +opening });
    return true;
  };
  const open = async (input: Input) => {
    if (await load(input, true)) active.push(checkedFirst(input));
  };

  for (;;) {
    // Before the row at offset o is merged, every input whose name starts at
    // or below o must be open: it may hold o, or a smaller offset.
    let min = 0;
    for (let i = 1; i < active.length; i++) if (active[i].offset < active[min].offset) min = i;
    if (
      next < pending.length &&
      (active.length === 0 || pending[next].file.firstOffset <= active[min].offset)
    ) {
      await open(pending[next++]);
      continue;
    }
    if (active.length === 0) break;

    const input = active[min];
    const o = input.offset;
    if (o < input.prev) {
      throw new LakeFileError(input.file.key, `rows not in offset order: ${o} after ${input.prev}`);
    }
    input.prev = o;
    if (o > last) {
      // The first copy of an offset is kept; copies in other inputs are equal.
      last = o;
      copyRow(input, group, filled++, dicts);
      if (filled === group.offset.length) {
        encoder.write(group, filled);
        filled = 0;
      }
    }
    if (++input.at === input.n && !await load(input, false)) {
      active.splice(min, 1);
      input.cols = {};
    }
  }
  encoder.write(group, filled);

  const rows = encoder.rows;
  await replace(store, hourStartMs, partition, files, output, encoder.finish());
  return { inputs: files.length, output, rows };
}

const MARKER_RE = /compacting-p(\d{4,})-h(\d+)\.json$/;

/** The marker a compaction leaves while it replaces an hour's files. */
function markerKey(partition: number, hourStartMs: number): string {
  return `${STAGING_PREFIX}compacting-p${String(partition).padStart(4, "0")}-h${hourStartMs}.json`;
}

/**
 * Hours of `partition` whose compaction started and did not finish (a crash
 * between the output's put and the last delete): their readers deduplicate
 * the overlap, and the speed layer compacts them again when it takes the
 * partition.
 */
export async function unfinishedCompactions(
  store: ObjectStore,
  partition: number,
): Promise<number[]> {
  const out: number[] = [];
  for (const e of await store.list(STAGING_PREFIX)) {
    const m = MARKER_RE.exec(e.key);
    if (m && Number(m[1]) === partition) out.push(Number(m[2]));
  }
  return out.sort((a, b) => a - b);
}

/**
 * Puts the output whole, then deletes the inputs, between a marker's put and
 * delete so a crash in between is found again (unfinishedCompactions).
 */
async function replace(
  store: ObjectStore,
  hourStartMs: number,
  partition: number,
  files: LakeFile[],
  output: string,
  bytes: Uint8Array,
) {
  const marker = markerKey(partition, hourStartMs);
  await store.put(marker, new TextEncoder().encode(JSON.stringify({ output })));
  await store.put(output, bytes);
  for (const f of files) {
    // The output may reuse an input's name (that input already covered the range).
    if (f.key !== output) await store.delete(f.key);
  }
  await store.delete(marker);
}

function copyRow(input: Input, to: EventColumns, j: number, dicts: Dictionaries): void {
  const c = input.cols, i = input.at;
  to.timestamp[j] = (c.timestamp as Float64Array)[i];
  to.bytes[j] = (c.bytes as Float64Array)[i];
  to.partition[j] = (c.partition as Int32Array)[i];
  to.offset[j] = (c.offset as Float64Array)[i];
  for (const s of STRING_COLUMNS) to[s][j] = dicts[s].values[(c[s] as Int32Array)[i]];
}
