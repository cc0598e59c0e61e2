/**
 * Compaction of a finished hour: the many small files one Kafka partition
 * wrote into an hour folder become one file, named by the smallest first and
 * largest last offset, rows sorted by offset and deduplicated. The new file is
 * written whole before any input is deleted; in between, readers see
 * overlapping ranges and deduplicate, so they stay exactly-once throughout.
 * A crash leaves at worst extra inputs, which the next run merges again.
 */
import { encodeColumns, type EventColumns, LAKE_COLUMNS } from "./format.ts";
import { hourPath, segmentFileName } from "./paths.ts";
import { allocColumn, type FileColumns, readFileInto, readFileMetadata } from "./read_file.ts";
import { listHour, mergeDedupe, overlapRuns } from "./reader.ts";
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
 * @example await compactHour(store, Date.UTC(2026, 10, 28, 10), 3)
 */
export async function compactHour(
  store: ObjectStore,
  hourStartMs: number,
  partition: number,
): Promise<CompactResult> {
  const files = (await listHour(store, hourStartMs)).filter((f) => f.partition === partition);
  if (files.length <= 1) return { inputs: 0 };
  let cols: FileColumns;
  let rows: number;
  const runs = overlapRuns(files);
  if (runs.every((r) => r.length === 1)) {
    // Usual case, disjoint inputs: decode each straight into its slot.
    const metas = await Promise.all(files.map((f) => readFileMetadata(store, f.key, f.size)));
    const counts = metas.map((m) => Number(m.num_rows));
    rows = counts.reduce((a, b) => a + b, 0);
    cols = Object.fromEntries(LAKE_COLUMNS.map((c) => [c, allocColumn(c, rows)]));
    let at = 0;
    for (let i = 0; i < files.length; i++) {
      await readFileInto(store, files[i].key, files[i].size, LAKE_COLUMNS, { cols, at }, metas[i]);
      at += counts[i];
    }
  } else {
    const parts = [];
    for (const f of files) parts.push(await readFileInto(store, f.key, f.size, LAKE_COLUMNS));
    const capacity = parts.reduce((n, p) => n + p.rows, 0);
    cols = Object.fromEntries(LAKE_COLUMNS.map((c) => [c, allocColumn(c, capacity)]));
    rows = mergeDedupe(parts, LAKE_COLUMNS, cols, 0);
  }
  const first = Math.min(...files.map((f) => f.firstOffset));
  const last = Math.max(...files.map((f) => f.lastOffset));
  const output = hourPath(hourStartMs) + segmentFileName(partition, first, last);
  await store.put(output, encodeColumns(cols as unknown as EventColumns, rows));
  for (const f of files) {
    // The output may reuse an input's name (that input already covered the range).
    if (f.key !== output) await store.delete(f.key);
  }
  return { inputs: files.length, output, rows };
}
