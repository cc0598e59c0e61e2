/**
 * Retrying a sink write until it succeeds. A fault of PostgreSQL, the object
 * store or the dead-letter topic must not lose data nor crash the layer: the
 * write is repeated with exponential backoff (capped), consumption is paused
 * while it fails, and the log says once that the sink is down and once that it
 * is back. Only `stop` ends the wait, with the write's last error.
 */
import type { Logger } from "../log.ts";

export interface RetryHooks {
  readonly log: Logger;
  /** Called at the first failure of a write (pause the source). */
  onDown(sink: string): void;
  /** Called when a write succeeds after failures (resume the source). */
  onUp(sink: string): void;
  /** Counts each failed attempt. */
  onRetry(sink: string): void;
  /** True once waiting should stop (the layer is being stopped past its deadline). */
  aborted(): boolean;
}

export const BACKOFF_START_MS = 100;
export const BACKOFF_CAP_MS = 5_000;

/** Backoff before attempt `n` (1-based failures): 100 ms doubling, capped at 5 s. */
export function backoffMs(failures: number): number {
  return Math.min(BACKOFF_CAP_MS, BACKOFF_START_MS * 2 ** Math.max(0, failures - 1));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `write` until it resolves; see the module doc. */
export async function retrying<T>(
  sink: string,
  hooks: RetryHooks,
  write: () => Promise<T>,
): Promise<T> {
  let failures = 0;
  while (true) {
    try {
      const out = await write();
      if (failures > 0) {
        hooks.log.info(`${sink} resumed`, { sink, failures });
        hooks.onUp(sink);
      }
      return out;
    } catch (err) {
      failures++;
      hooks.onRetry(sink);
      if (failures === 1) {
        hooks.log.warn(`${sink} unavailable, retrying`, { sink, error: err });
        hooks.onDown(sink);
      } else {
        hooks.log.debug(`${sink} still unavailable`, { sink, failures, error: err });
      }
      if (hooks.aborted()) throw err;
      // Wait in small steps so a stop does not sit out a 5 s backoff.
      const until = Date.now() + backoffMs(failures);
      while (Date.now() < until && !hooks.aborted()) await sleep(Math.min(100, until - Date.now()));
      if (hooks.aborted()) throw err;
    }
  }
}
