/**
 * Where the replayable simulator keeps its timeline (segments per partition,
 * timeline.ts) and how far it may have issued each partition: PostgreSQL or
 * PGlite in `start` (db_timeline_store.ts), memory in unit tests. These few
 * rows are all it stores; messages are derived again from them.
 */
import type { Segment } from "./timeline.ts";

/** What is recorded about one partition. */
export interface PartitionTimeline {
  /** In offset order; empty before the first start. */
  readonly segments: readonly Segment[];
  /** Every offset ever delivered is below it (0 when nothing was). */
  readonly issuedEnd: number;
}

export interface TimelineStore {
  /** The records of `partitions` (a partition never seen has no segments). */
  load(partitions: readonly number[]): Promise<Map<number, PartitionTimeline>>;
  /** Records one segment per partition, replacing one with the same first offset. */
  record(segments: ReadonlyMap<number, Segment>): Promise<void>;
  /** Raises the issued end of partitions; a lower value leaves it as it is. */
  reserve(ends: ReadonlyMap<number, number>): Promise<void>;
}

/**
 * A timeline store in memory, for tests and a source without a database; it
 * lasts as long as the object.
 *
 * @example const store = createMemoryTimelineStore(); // share it between sources to "restart"
 */
export function createMemoryTimelineStore(): TimelineStore {
  const segments = new Map<number, Segment[]>();
  const issued = new Map<number, number>();
  return {
    load(partitions) {
      return Promise.resolve(
        new Map(partitions.map((p) => [p, {
          segments: [...(segments.get(p) ?? [])],
          issuedEnd: issued.get(p) ?? 0,
        }])),
      );
    },
    record(add) {
      for (const [p, s] of add) {
        const list = (segments.get(p) ?? []).filter((x) => x.fromOffset !== s.fromOffset);
        list.push(s);
        list.sort((a, b) => a.fromOffset - b.fromOffset);
        segments.set(p, list);
      }
      return Promise.resolve();
    },
    reserve(ends) {
      for (const [p, e] of ends) issued.set(p, Math.max(issued.get(p) ?? 0, e));
      return Promise.resolve();
    },
  };
}
