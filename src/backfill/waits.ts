/**
 * The rows a worker holds that wait for the lake: since when and why, logged
 * when a wait begins, now and then while it lasts, and when it ends, and
 * shown by the worker's status.
 */
import type { Logger } from "../log.ts";
import { type LakeLag, type LakePace, waitReason } from "./lake_wait.ts";
import type { RowWait } from "./status.ts";

/** A long wait is logged again this often. */
export const WAIT_LOG_EVERY_MS = 30_000;

interface Entry extends RowWait {
  readonly lag: LakeLag;
  readonly loggedMs: number;
}

export class Waits {
  readonly #log: Logger;
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(log: Logger, now: () => number = Date.now) {
    this.#log = log;
    this.#now = now;
  }

  /** Row `metric`'s partition waits on the lake as `lag` says. */
  note(metric: string, lag: LakeLag, pace: LakePace): void {
    const key = `${metric}/${lag.partition}`;
    const now = this.#now();
    const reason = waitReason(lag, pace);
    const was = this.#entries.get(key);
    const fields = {
      metric,
      partition: lag.partition,
      lake_offset: lag.lakeOffset,
      stop_offset: lag.stopOffset,
      reason,
    };
    if (!was) {
      this.#log.info("backfill waits for the lake", fields);
    } else if (now - was.loggedMs >= WAIT_LOG_EVERY_MS) {
      this.#log.info("backfill still waits for the lake", {
        ...fields,
        waited_ms: now - was.sinceMs,
      });
    }
    const logged = !was || now - was.loggedMs >= WAIT_LOG_EVERY_MS;
    this.#entries.set(key, {
      metric,
      partition: lag.partition,
      reason,
      lag,
      sinceMs: was?.sinceMs ?? now,
      loggedMs: logged ? now : was.loggedMs,
    });
  }

  /** The row no longer waits (finished, dropped or given back); how long it waited, if it did. */
  end(metric: string, partition: number): number | undefined {
    const key = `${metric}/${partition}`;
    const was = this.#entries.get(key);
    this.#entries.delete(key);
    return was === undefined ? undefined : this.#now() - was.sinceMs;
  }

  /** Rows waiting now, of `metrics` when given. */
  list(metrics?: readonly string[]): (RowWait & { lag: LakeLag })[] {
    return [...this.#entries.values()].filter((w) => !metrics || metrics.includes(w.metric));
  }
}
