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

/**
 * What a delivery attempt means for each claimed delivery: delivered; failed
 * and due again after a backoff; or failed for good after the output's last
 * attempt. Pure.
 */
export function outcomesOf(
  batch: readonly Claimed[],
  attempts: readonly ({ ok: true } | { ok: false; error: string })[],
  retry: RetryPlan,
): { claimed: Claimed; outcome: Outcome }[] {
  return batch.map((claimed, i) => {
    const a = attempts[i];
    if (a.ok) return { claimed, outcome: { kind: "delivered" } };
    if (claimed.attempt >= retry.maxAttempts) {
      return { claimed, outcome: { kind: "failed", error: a.error } };
    }
    const delayMs = backoffAfter(claimed.attempt, retry);
    return { claimed, outcome: { kind: "retry", delayMs, error: a.error } };
  });
}

export function startDispatcher(o: DispatcherOptions): Dispatcher {
  const stopping = new AbortController();
  const inFlight = new AbortController();
  const holder = o.holder ?? processHolder();
  const workers = o.outputs.map((output) =>
    new OutputWorker(o, output, holder, stopping.signal, inFlight.signal)
  );
  const loops = workers.map((w) => w.run());
  return {
    wake() {
      for (const w of workers) w.wakeup.wake();
    },
    async stop(deadlineMs = 2_000) {
      stopping.abort();
      for (const w of workers) w.wakeup.wake();
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

/** One output's worker: claim due deliveries, deliver them, record and count the outcomes. */
class OutputWorker {
  readonly wakeup = new Wakeup();
  readonly #log: Logger;
  readonly #clock: () => number;
  #dbFailures = 0;
  #takenOverAt = -Infinity;

  constructor(
    readonly o: DispatcherOptions,
    readonly output: AlertOutput,
    readonly holder: RunHolder,
    readonly stopping: AbortSignal,
    readonly inFlight: AbortSignal,
  ) {
    this.#log = o.log.child({ output: output.name });
    this.#clock = o.clock ?? Date.now;
  }

  async run(): Promise<void> {
    while (!this.stopping.aborted) {
      const batch = await this.#claim();
      if (batch === undefined) continue;
      if (batch.length === 0) {
        await this.wakeup.wait(this.o.pollMs ?? 1_000, this.stopping);
        continue;
      }
      const attempts = await this.output.deliver(batch, this.inFlight).catch((e) =>
        batch.map(() => ({ ok: false as const, error: String(e) }))
      );
      const now = this.#clock();
      const done = outcomesOf(batch, attempts, this.output.retry);
      // Recorded before anything is counted: a crash here means delivering again.
      await this.#record(done);
      for (const d of done) this.#count(d.claimed, d.outcome, now);
    }
  }

  /** Due deliveries, after taking over those of dead processes; undefined after a fault. */
  async #claim(): Promise<Claimed[] | undefined> {
    try {
      if (this.#clock() - this.#takenOverAt >= TAKEOVER_EVERY_MS) {
        await this.#takeOver();
        this.#takenOverAt = this.#clock();
      }
      const out = this.output;
      return await claimDeliveries(this.o.db, out.name, out.batchSize, out.leaseMs, this.holder.id);
    } catch (error) {
      await this.#dbFault("claim deliveries", error);
      return undefined;
    }
  }

  /** Claims of this host's processes that are gone are due at once, not after their lease. */
  async #takeOver(): Promise<void> {
    for (const h of await claimHolders(this.o.db, this.output.name, this.holder.id)) {
      if (!this.holder.gone(h)) continue;
      const n = await releaseClaims(this.o.db, this.output.name, h);
      if (n > 0) {
        this.#log.info("quota alert outbox: taking over deliveries of a process that is gone", {
          holder: h,
          deliveries: n,
        });
      }
    }
  }

  async #record(done: { claimed: Claimed; outcome: Outcome }[]): Promise<void> {
    for (let tries = 0;; tries++) {
      try {
        await recordOutcomes(this.o.db, this.output.name, done, this.output.failureInDoubt);
        this.#dbFailures = 0;
        return;
      } catch (error) {
        if (this.stopping.aborted || tries >= 20) {
          this.#log.error("quota alert outbox: outcomes not recorded; they are delivered again", {
            error,
          });
          return;
        }
        await this.#dbFault("record outcomes", error);
      }
    }
  }

  async #dbFault(what: string, error: unknown): Promise<void> {
    this.#dbFailures++;
    if (this.#dbFailures === 1) {
      this.#log.warn(`quota alert outbox: could not ${what}, retrying`, { error });
    }
    await pause(backoffMs(this.#dbFailures, { initialMs: DB_RETRY_MS }), this.stopping);
  }

  #count(claimed: Claimed, outcome: Outcome, now: number): void {
    const { telemetry } = this.o, output = this.output.name;
    if (outcome.kind === "delivered") {
      telemetry.delivered.inc({ output });
      const consumed = this.o.consumedAt?.(claimed.alert.id);
      if (consumed !== undefined) {
        telemetry.deliverySeconds.observe((now - consumed) / 1000, { output });
      }
      return;
    }
    telemetry.attemptErrors.inc({ output });
    if (outcome.kind === "failed") {
      telemetry.failures.inc({ output });
      this.#log.error("quota alert delivery failed for good", {
        alert: claimed.alert.id,
        email: claimed.alert.email,
        attempts: claimed.attempt,
        error: outcome.error,
      });
    } else {
      // Once per alert at warning level: a receiver that is down for a while
      // would otherwise fill the log with one line per attempt.
      this.#log[claimed.attempt === 1 ? "warn" : "debug"]("quota alert delivery failed, retrying", {
        alert: claimed.alert.id,
        attempt: claimed.attempt,
        retry_in_ms: outcome.delayMs,
        error: outcome.error,
      });
    }
  }
}
