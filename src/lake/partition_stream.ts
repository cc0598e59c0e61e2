/**
 * One Kafka partition's events from the lake, in offset order, a slice at a
 * time: what a replay of the partition needs (src/backfill). A partition's
 * events are spread over hour folders by event time and a late event sits in
 * an earlier hour's folder than its neighbours in offset order, so files of
 * several hours are merged by offset, as compaction merges one hour's: each
 * file is opened only when the merge reaches the first offset of its name and
 * read a slice of rows at a time, so what is decoded at once is a slice per
 * file overlapping the merge point (two or three: the hours late events
 * reach), however many rows the partition holds. Offsets held by two files (a
 * compacted file beside its inputs, a replay orphan) come out once.
 */
import { LakeFileError } from "./errors.ts";
import {
  checkedFirst,
  newDictionaries,
  SliceInput as Input,
  STRING_COLUMNS,
} from "./slice_input.ts";
import { parseFileName, parseHourPath } from "./paths.ts";
import { STAGING_PREFIX } from "./intent.ts";
import type { LakeFile } from "./reader.ts";
import type { ObjectStore } from "./store.ts";

export interface PartitionStreamOptions {
  readonly partition: number;
  /** Only files of hour folders starting at or after this (epoch ms). Default: every hour. */
  readonly fromHourMs?: number;
  /** Only files of hour folders starting before this. Default: no bound. */
  readonly untilHourMs?: number;
  /** First offset wanted. Default 0. */
  readonly startOffset?: number;
  /** Offsets at or after it are not wanted. Default: no bound. */
  readonly stopOffset?: number;
  /** Rows per slice read from a file, and at most per chunk yielded. Default 65,536. */
  readonly sliceRows?: number;
  /** The files to merge, when the caller listed them already (`listPartitionFiles`). */
  readonly files?: readonly PartitionFile[];
}

/** A lake file of the partition, with the hour folder it is in. */
export interface PartitionFile extends LakeFile {
  readonly hourMs: number;
}

/** Consecutive events of the partition, in offset order, as columns. */
export interface EventChunk {
  readonly rows: number;
  /** Epoch ms. */
  readonly timestamp: Float64Array;
  readonly id: string[];
  readonly antenna_id: string[];
  readonly app: string[];
  readonly bytes: Float64Array;
  readonly offset: Float64Array;
}

const COLUMNS = ["timestamp", "id", "antenna_id", "app", "bytes", "offset"] as const;

/**
 * The lake files of `partition` in hour folders within [fromHourMs,
 * untilHourMs), listed once over the whole lake (staging files left out),
 * sorted by first offset.
 */
export async function listPartitionFiles(
  store: ObjectStore,
  partition: number,
  fromHourMs = -Infinity,
  untilHourMs = Infinity,
): Promise<PartitionFile[]> {
  const out: PartitionFile[] = [];
  for (const e of await store.list("")) {
    if (e.key.startsWith(STAGING_PREFIX)) continue;
    const name = parseFileName(e.key);
    const hourMs = parseHourPath(e.key);
    if (!name || hourMs === undefined || name.partition !== partition) continue;
    if (hourMs < fromHourMs || hourMs >= untilHourMs) continue;
    out.push({ ...name, key: e.key, size: e.size, hourMs });
  }
  return out.sort((a, b) => a.firstOffset - b.firstOffset || a.lastOffset - b.lastOffset);
}

function allocChunk(n: number) {
  return {
    timestamp: new Float64Array(n),
    id: new Array<string>(n),
    antenna_id: new Array<string>(n),
    app: new Array<string>(n),
    bytes: new Float64Array(n),
    offset: new Float64Array(n),
  };
}

/**
 * The events of one partition with offsets in [startOffset, stopOffset), in
 * offset order, each once, in chunks of at most `sliceRows` events.
 *
 * @example
 * for await (const c of streamPartition(store, { partition: 0, stopOffset: 1_000 })) {
 *   for (let i = 0; i < c.rows; i++) replay(c.timestamp[i], c.id[i], c.offset[i]);
 * }
 */
export async function* streamPartition(
  store: ObjectStore,
  opts: PartitionStreamOptions,
): AsyncGenerator<EventChunk> {
  const start = opts.startOffset ?? 0;
  const stop = opts.stopOffset ?? Infinity;
  const sliceRows = opts.sliceRows ?? 65_536;
  const files = (opts.files ??
    await listPartitionFiles(store, opts.partition, opts.fromHourMs, opts.untilHourMs))
    .filter((f) => f.partition === opts.partition && f.lastOffset >= start && f.firstOffset < stop)
    .sort((a, b) => a.firstOffset - b.firstOffset || a.lastOffset - b.lastOffset);
  const dicts = newDictionaries();
  const active: Input[] = [];
  let next = 0;
  let last = start - 1;
  let chunk = allocChunk(sliceRows);
  let filled = 0;

  const open = async (f: PartitionFile) => {
    const input = new Input(f, COLUMNS);
    if (await input.load(store, sliceRows, dicts)) active.push(checkedFirst(input));
  };

  for (;;) {
    // Every file whose name starts at or below the smallest offset held must
    // be open before that offset is taken: it may hold a smaller one.
    let min = 0;
    for (let i = 1; i < active.length; i++) if (active[i].offset < active[min].offset) min = i;
    if (
      next < files.length &&
      (active.length === 0 || files[next].firstOffset <= active[min].offset)
    ) {
      await open(files[next++]);
      continue;
    }
    if (active.length === 0) break;
    const input = active[min];
    const o = input.offset;
    if (o >= stop) {
      // Every other file holds only larger offsets from here: done.
      break;
    }
    if (o < input.prev) {
      throw new LakeFileError(input.file.key, `rows not in offset order: ${o} after ${input.prev}`);
    }
    input.prev = o;
    if (o > last) {
      last = o;
      const c = input.cols, i = input.at;
      chunk.timestamp[filled] = (c.timestamp as Float64Array)[i];
      chunk.bytes[filled] = (c.bytes as Float64Array)[i];
      chunk.offset[filled] = o;
      for (const s of STRING_COLUMNS) chunk[s][filled] = dicts[s].values[(c[s] as Int32Array)[i]];
      if (++filled === sliceRows) {
        yield { rows: filled, ...chunk };
        chunk = allocChunk(sliceRows);
        filled = 0;
      }
    }
    if (++input.at === input.n && !await input.load(store, sliceRows, dicts)) {
      active.splice(min, 1);
    }
  }
  if (filled > 0) yield trimmed(chunk, filled);
}

/** The first `rows` events of a chunk. */
function trimmed(chunk: ReturnType<typeof allocChunk>, rows: number): EventChunk {
  return {
    rows,
    timestamp: chunk.timestamp.subarray(0, rows),
    id: chunk.id.slice(0, rows),
    antenna_id: chunk.antenna_id.slice(0, rows),
    app: chunk.app.slice(0, rows),
    bytes: chunk.bytes.subarray(0, rows),
    offset: chunk.offset.subarray(0, rows),
  };
}
