/**
 * Writing what a flush took (partition.ts `take`): the dead letters to their
 * topic, then every partition's rows, offsets and participants' writes to
 * PostgreSQL (sink.ts), each retried until it succeeds; then committing to
 * Kafka, per partition, the lower of what PostgreSQL and the lake hold.
 */
import type { Db } from "../db/db.ts";
import type { DeadLetterSink, EventSource } from "./source.ts";
import type { Logger } from "../log.ts";
import type { SpeedLake } from "./lake_port.ts";
import type { SpeedPartition } from "./partition.ts";
import { type RetryHooks, retrying } from "./retry.ts";
import type { Aggregation } from "../config/plan.ts";
import { type Aggregations, flushWriter, type PartitionFlush } from "./sink.ts";
import type { SpeedTelemetry } from "./telemetry.ts";

export interface FlusherDeps {
  readonly db: Db;
  readonly topic: string;
  readonly windowMs: number;
  readonly source: EventSource;
  readonly lake: SpeedLake;
  readonly deadLetters?: DeadLetterSink;
  readonly hooks: RetryHooks;
  readonly log: Logger;
  readonly telemetry: SpeedTelemetry;
  /** Called after a flush that made a partition's lake complete past another hour's end. */
  readonly onLakeHour?: () => void;
}

/** One partition's take, with the partition it came from. */
export interface Taken {
  readonly st: SpeedPartition;
  readonly part: PartitionFlush;
}

export class Flusher {
  readonly #d: FlusherDeps;
  /** A flush met rows it took for new: every row is upserted from then on. */
  upsertOnly = false;
  /** The aggregation of each metric the takes may hold. */
  aggregations: Aggregations;

  /**
   * After a plan switch: the switch flush still writes the old metrics'
   * deltas (removed ones included), and a backfill may write rows of the new
   * metrics in the live windows meanwhile, so every write is an upsert.
   */
  adopt(metrics: readonly { readonly name: string; readonly aggregation: Aggregation }[]): void {
    this.aggregations = new Map([
      ...this.aggregations,
      ...metrics.map((m) => [m.name, m.aggregation] as const),
    ]);
    this.upsertOnly = true;
  }

  constructor(deps: FlusherDeps & { readonly aggregations: Aggregations }) {
    this.#d = deps;
    this.aggregations = deps.aggregations;
  }

  /** Writes one flush's takes; resolves once PostgreSQL holds them all. */
  async write(taken: readonly Taken[]): Promise<void> {
    const d = this.#d;
    const started = Date.now();
    const parts = taken.map((s) => s.part);
    const letters = parts.flatMap((p) => p.letters);
    const dlq = d.deadLetters;
    if (letters.length > 0 && dlq) {
      await retrying("dead-letter topic", d.hooks, () => dlq.send(letters));
    }
    const writer = flushWriter(d.db, d.topic, d.windowMs, this.aggregations, parts);
    await retrying("postgres", d.hooks, () => writer.attempt());
    if (!writer.insertedNew && !this.upsertOnly) {
      // Rows this layer did not write (another topic on the same partitions?):
      // stop guessing for this session.
      this.upsertOnly = true;
      d.log.warn("speed flush met stored rows it took for new; upserting only from now on", {
        partitions: parts.map((p) => p.partition),
      });
    }
    d.log.debug("speed flush", {
      partitions: parts.length,
      upserts: parts.reduce((n, p) => n + p.deltas.length, 0),
      inserts: parts.reduce((n, p) => n + (p.inserts?.length ?? 0), 0),
      ms: Date.now() - started,
    });
    d.telemetry.flushes.inc();
    let lakeHour = false;
    for (const { st, part } of taken) {
      const w = st.written(part);
      lakeHour ||= w.lakeHour;
      if (w.windowsWritten) d.telemetry.windowsWritten.inc(undefined, w.windowsWritten);
    }
    if (lakeHour) d.onLakeHour?.();
    for (const p of parts) for (const w of p.writes ?? []) w.committed?.();
  }

  /** Commits to Kafka what moved, per partition. */
  async commit(partitions: Iterable<SpeedPartition>): Promise<void> {
    const d = this.#d;
    const owned = new Map<number, SpeedPartition>();
    const offsets = new Map<number, number>();
    for (const st of partitions) {
      const off = st.commitOffset(d.lake.durableOffset(st.partition));
      if (off === undefined) continue;
      owned.set(st.partition, st);
      offsets.set(st.partition, off);
    }
    if (offsets.size === 0) return;
    await retrying("kafka commit", d.hooks, () => d.source.commit(offsets));
    for (const [p, off] of offsets) {
      owned.get(p)!.committed = off;
      d.telemetry.committedOffset.set(off, { partition: p });
      d.lake.markCommitted(p, off);
    }
  }
}
