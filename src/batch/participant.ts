/**
 * An extension point of the batch layer, the counterpart of the speed
 * layer's flush participants: something that rides along an hour's write
 * (the confirmation of quota alerts, for one). It gets the hour's exact usage
 * and quota per email and writes inside the hour's one transaction, after
 * its rows, so what it concludes commits with the hour or not at all; a
 * re-run of the hour calls it again.
 */
import type { Queryable } from "../db/db.ts";

/** What the batch layer found for an hour, per known email. */
export interface HourTotals {
  /** Start of the UTC hour, epoch ms. */
  readonly hour: number;
  readonly runId: string;
  /** Bytes of each email's devices in the hour (emails with none left out). */
  readonly usageByEmail: ReadonlyMap<string, number>;
  /** Each email's hourly quota (the largest of its devices'). */
  readonly quotaByEmail: ReadonlyMap<string, number>;
}

export interface HourParticipant {
  /** For logs. */
  readonly name: string;
  /** Its share of the hour's write; undefined when nothing. */
  take(totals: HourTotals): HourWrite | undefined;
}

export interface HourWrite {
  /** Runs inside the hour's transaction, after its rows and before the run is marked done. */
  write(tx: Queryable): Promise<void>;
  /** After the transaction committed. Must not throw. */
  committed?(): void;
}
