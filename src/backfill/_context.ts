/**
 * What the parts of the backfill worker share: its dependencies with their
 * defaults filled in, and the worker's own state they read (stopping) or
 * report to (a committed chunk, a row's progress).
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import type { ObjectStore } from "../lake/mod.ts";
import type { Logger } from "../log.ts";
import type { RunHolder } from "../holder.ts";
import type { BackfillTelemetry } from "./telemetry.ts";

/** Where one row stands, after a chunk. */
export interface RowProgress {
  readonly metric: string;
  readonly partition: number;
  readonly nextOffset: number;
  readonly stopOffset: number;
  readonly startOffset: number;
  readonly finished: boolean;
}

export interface WorkerContext {
  readonly db: Db;
  readonly store: ObjectStore;
  readonly topic: string;
  readonly plan: () => Plan;
  readonly log: Logger;
  readonly holder: RunHolder;
  readonly leaseMs: number;
  readonly restRatio: number;
  readonly chunkEvents: number;
  readonly progressEveryMs: number;
  readonly pollMs: number;
  readonly telemetry: BackfillTelemetry;
  readonly onProgress?: (p: RowProgress) => void;
  readonly runHour?: (hour: number) => Promise<{ status: string; runId: string }>;
  /** The worker is stopping: leave after the chunk in flight. */
  stopping(): boolean;
  /** A chunk was committed (drain tells progress from waiting). */
  committed(): void;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
