/**
 * An extension point of the speed layer: something that rides along its
 * flushes (quota alerts, for one). It sees every valid event the layer
 * applies for the first time, in offset order per partition, and writes what
 * it made of them inside that partition's flush transaction, beside the
 * windows and the offset they account for. So a replay after a crash, a
 * restart or a rebalance never shows it an event twice, and what it wrote is
 * there exactly when the offset is.
 */
import type { Plan } from "../config/plan.ts";
import type { SourcedEvent } from "../core/event.ts";
import type { Queryable } from "../db/db.ts";

export interface FlushParticipant {
  /** For logs. */
  readonly name: string;
  /** A valid event applied for the first time (its partition's offset order). */
  event(e: SourcedEvent): void;
  /**
   * What `partition` accumulated since the last take, to write; undefined
   * when nothing. `lag`: the partition's messages not consumed yet.
   */
  take(partition: number, at: { readonly lag: number }): ParticipantWrite | undefined;
  /** The partition was revoked (its last take has been written): drop its state. */
  release?(partition: number): void;
  /** The speed layer switched to this plan (a live reload): events from now on are under it. */
  applyPlan?(plan: Plan): void;
}

/** One partition's share of a flush. */
export interface ParticipantWrite {
  /**
   * Runs inside the flush transaction, after the partition's rows and
   * offset; may run more than once (a failed transaction is retried whole).
   */
  write(tx: Queryable): Promise<void>;
  /** After the transaction committed (publish, notify). Must not throw. */
  committed?(): void;
}
