/**
 * What the outbox dispatcher needs from an output: deliver a batch of claimed
 * alerts and say, per alert, whether it arrived. An output never throws for a
 * failed delivery; it reports it, and the dispatcher retries with backoff.
 */
import type { RetryPlan } from "../config/plan.ts";
import type { Claimed } from "./store.ts";
import type { OutputName } from "./types.ts";

/** The outcome of one attempt: delivered, or why not. */
export type Attempt = { readonly ok: true } | { readonly ok: false; readonly error: string };

export interface AlertOutput {
  readonly name: OutputName;
  readonly retry: RetryPlan;
  /** Deliveries claimed at once. */
  readonly batchSize: number;
  /** How long a claim holds a delivery: longer than one `deliver` can take. */
  readonly leaseMs: number;
  /** Whether a failed attempt may still have arrived (a retry must then look first). */
  readonly failureInDoubt: boolean;
  /** One result per claimed delivery, in order. */
  deliver(batch: readonly Claimed[], signal: AbortSignal): Promise<Attempt[]>;
  close(): Promise<void>;
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
