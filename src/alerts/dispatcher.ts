/**
 * The outbox dispatcher: one worker per output, apart from the speed layer's
 * flushes (consumption never waits for a delivery). A worker claims due
 * deliveries from PostgreSQL, hands them to its output, and records each
 * outcome: delivered; failed and due again after a backoff; or, after the
 * output's last attempt, failed for good (the API shows it). Every
 * instance's workers share the table (claims skip rows another holds), and a
 * process that dies mid-delivery leaves its claims due again after their
 * lease, so nothing raised is ever left undelivered. A worker wakes when this
 * process raises an alert and polls for the rest (other instances, retries).
 */
import { processHolder, type RunHolder } from "../holder.ts";
import type { Db } from "../db/db.ts";
import type { Logger } from "../log.ts";
import type { RetryPlan } from "../config/plan.ts";
import { pause } from "../async/delay.ts";
import { backoffMs } from "../async/retry.ts";
import { Wakeup } from "../async/wakeup.ts";
import type { AlertOutput } from "./output.ts";
import {
  claimDeliveries,
  type Claimed,
  claimHolders,
  type Outcome,
  recordOutcomes,
  releaseClaims,
} from "./store.ts";
import type { AlertTelemetry } from "./telemetry.ts";

export interface DispatcherOptions {
  readonly db: Db;
  readonly outputs: readonly AlertOutput[];
  readonly log: Logger;
  readonly telemetry: AlertTelemetry;
  /** How often idle workers look for due deliveries. Default 1000 ms. */
  readonly pollMs?: number;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly clock?: () => number;
  /**
   * Wall time each alert's crossing event was consumed (this process's
   * alerts), for the delivery delay histogram; forgotten once delivered.
   */
  readonly consumedAt?: (alertId: number) => number | undefined;
  /** Who claims (default this process), and how a dead claimer is recognised. */
  readonly holder?: RunHolder;
}

export interface Dispatcher {
  /** Look for due deliveries now (an alert was raised). */
  wake(): void;
  /** Stops claiming; waits for deliveries in flight up to `deadlineMs`, then abandons them. */
  stop(deadlineMs?: number): Promise<void>;
}

/** A database fault while claiming or recording: wait this long, doubling to 5 s. */
const DB_RETRY_MS = 200;

/**
 * Wait after failed delivery attempt number `attempt` (1-based): `backoff`
 * doubling, capped at `max_backoff`. No jitter: deliveries of different
 * alerts are already spread by when they were raised.
 *
 * @example backoffAfter(3, { maxAttempts: 10, backoffMs: 1000, maxBackoffMs: 300000 }) // 4000
 */
export function backoffAfter(attempt: number, retry: RetryPlan): number {
  return backoffMs(attempt, { initialMs: retry.backoffMs, maxMs: retry.maxBackoffMs });
}
/** How often claims of processes that died are looked for (and at start). */
const TAKEOVER_EVERY_MS = 10_000;

export function startDispatcher(o: DispatcherOptions): Dispatcher {
  const pollMs = o.pollMs ?? 1_000;
  const clock = o.clock ?? Date.now;
  const stopping = new AbortController();
  const inFlight = new AbortController();
  const wakeups = o.outputs.map(() => new Wakeup());
  const holder = o.holder ?? processHolder();

  /** Claims of this host's processes that are gone are due at once, not after their lease. */
  async function takeOver(output: AlertOutput, log: Logger): Promise<void> {
    for (const h of await claimHolders(o.db, output.name, holder.id)) {
      if (!holder.gone(h)) continue;
      const n = await releaseClaims(o.db, output.name, h);
      if (n > 0) {
        log.info("quota alert outbox: taking over deliveries of a process that is gone", {
          holder: h,
          deliveries: n,
        });
      }
    }
  }

  async function worker(output: AlertOutput, wakeup: Wakeup): Promise<void> {
    const log = o.log.child({ output: output.name });
    let dbFailures = 0;
    const dbFault = async (what: string, error: unknown) => {
      dbFailures++;
      if (dbFailures === 1) log.warn(`quota alert outbox: could not ${what}, retrying`, { error });
      await pause(backoffMs(dbFailures, { initialMs: DB_RETRY_MS }), stopping.signal);
    };
    let takenOverAt = -Infinity;
    while (!stopping.signal.aborted) {
      let batch: Claimed[];
      try {
        if (clock() - takenOverAt >= TAKEOVER_EVERY_MS) {
          await takeOver(output, log);
          takenOverAt = clock();
        }
        batch = await claimDeliveries(
          o.db,
          output.name,
          output.batchSize,
          output.leaseMs,
          holder.id,
        );
      } catch (error) {
        await dbFault("claim deliveries", error);
        continue;
      }
      if (batch.length === 0) {
        await wakeup.wait(pollMs, stopping.signal);
        continue;
      }
      const attempts = await output.deliver(batch, inFlight.signal).catch((e) =>
        batch.map(() => ({ ok: false as const, error: String(e) }))
      );
      const now = clock();
      const done = batch.map((claimed, i): { claimed: Claimed; outcome: Outcome } => {
        const a = attempts[i];
        if (a.ok) return { claimed, outcome: { kind: "delivered" } };
        if (claimed.attempt >= output.retry.maxAttempts) {
          return { claimed, outcome: { kind: "failed", error: a.error } };
        }
        const delayMs = backoffAfter(claimed.attempt, output.retry);
        return { claimed, outcome: { kind: "retry", delayMs, error: a.error } };
      });
      // Recorded before anything is counted: a crash here means delivering again.
      for (let tries = 0;; tries++) {
        try {
          await recordOutcomes(o.db, output.name, done, output.failureInDoubt);
          dbFailures = 0;
          break;
        } catch (error) {
          if (stopping.signal.aborted || tries >= 20) {
            log.error("quota alert outbox: outcomes not recorded; they are delivered again", {
              error,
            });
            break;
          }
          await dbFault("record outcomes", error);
        }
      }
      for (const { claimed, outcome } of done) {
        if (outcome.kind === "delivered") {
          o.telemetry.delivered.inc({ output: output.name });
          const consumed = o.consumedAt?.(claimed.alert.id);
          if (consumed !== undefined) {
            o.telemetry.deliverySeconds.observe((now - consumed) / 1000, { output: output.name });
          }
          continue;
        }
        o.telemetry.attemptErrors.inc({ output: output.name });
        if (outcome.kind === "failed") {
          o.telemetry.failures.inc({ output: output.name });
          log.error("quota alert delivery failed for good", {
            alert: claimed.alert.id,
            email: claimed.alert.email,
            attempts: claimed.attempt,
            error: outcome.error,
          });
        } else {
          // Once per alert at warning level: a receiver that is down for a while
          // would otherwise fill the log with one line per attempt.
          log[claimed.attempt === 1 ? "warn" : "debug"]("quota alert delivery failed, retrying", {
            alert: claimed.alert.id,
            attempt: claimed.attempt,
            retry_in_ms: outcome.delayMs,
            error: outcome.error,
          });
        }
      }
    }
  }

  const loops = o.outputs.map((out, i) => worker(out, wakeups[i]));
  return {
    wake() {
      for (const w of wakeups) w.wake();
    },
    async stop(deadlineMs = 2_000) {
      stopping.abort();
      for (const w of wakeups) w.wake();
      const timer = setTimeout(() => inFlight.abort(), deadlineMs);
      try {
        await Promise.all(loops);
      } finally {
        clearTimeout(timer);
        await Promise.all(o.outputs.map((out) => out.close().catch(() => {})));
      }
    },
  };
}
