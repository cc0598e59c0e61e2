/**
 * Segment intents: the crash-safety record of the lake writer. Before a roll
 * segment's files are written, `_staging/p<partition>.json` is overwritten
 * with every segment written since the last Kafka commit known to the writer
 * (first and last offset, and the keys of its files). After a crash, the
 * consumer resumes from the committed offset and may cut segments at other
 * points (age-based rolls); `recover` then deletes the files of segments that
 * start at or after that offset, so the replay rewrites them instead of
 * duplicating their rows.
 */
import { LakeFileError } from "./errors.ts";
import type { ObjectStore } from "./store.ts";

export interface SegmentIntent {
  readonly first: number;
  readonly last: number;
  /** Keys of the segment's files, one per event hour. */
  readonly keys: readonly string[];
}

export interface IntentFile {
  readonly version: 1;
  readonly partition: number;
  readonly segments: readonly SegmentIntent[];
}

export const STAGING_PREFIX = "_staging/";

export function intentKey(partition: number): string {
  return `${STAGING_PREFIX}p${String(partition).padStart(4, "0")}.json`;
}

export async function readIntent(
  store: ObjectStore,
  partition: number,
): Promise<SegmentIntent[]> {
  const key = intentKey(partition);
  let bytes: Uint8Array;
  try {
    bytes = await store.get(key);
  } catch (err) {
    if ((err as { kind?: string }).kind === "not_found") return [];
    throw err;
  }
  try {
    const file = JSON.parse(new TextDecoder().decode(bytes)) as IntentFile;
    if (file.version !== 1 || file.partition !== partition || !Array.isArray(file.segments)) {
      throw new Error("unexpected content");
    }
    return file.segments.map((s) => ({ first: s.first, last: s.last, keys: [...s.keys] }));
  } catch (err) {
    // Unreadable intents cannot be guessed around: recovery would risk duplicates.
    throw new LakeFileError(key, (err as Error).message, { cause: err });
  }
}

export async function writeIntent(
  store: ObjectStore,
  partition: number,
  segments: readonly SegmentIntent[],
): Promise<void> {
  const file: IntentFile = { version: 1, partition, segments };
  await store.put(intentKey(partition), new TextEncoder().encode(JSON.stringify(file)));
}
