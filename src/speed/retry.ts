/**
 * Retrying a sink write until it succeeds. A fault of PostgreSQL, the object
 * store or the dead-letter topic must not lose data nor crash the layer: the
 * write is repeated with capped exponential backoff (src/async/retry.ts),
 * consumption is paused while it fails, and the log says once that the sink
 * is down and once that it is back. Only the layer's stop (its signal, aborted
 * past the stop deadline) ends the wait, with the write's last error.
 */
import { retry } from "../async/retry.ts";
import type { Logger } from "../log.ts";

export interface RetryHooks {
  readonly log: Logger;
  /** Called at the first failure of a write (pause the source). */
  onDown(sink: string): void;
  /** Called when a write succeeds after failures (resume the source). */
  onUp(sink: string): void;
  /** Counts each failed attempt. */
  onRetry(sink: string): void;
  /** Aborted once waiting should stop (the layer is being stopped past its deadline). */
  readonly signal: AbortSignal;
}

/** Runs `write` until it resolves; see the module doc. */
export async function retrying<T>(
  sink: string,
  hooks: RetryHooks,
  write: () => Promise<T>,
): Promise<T> {
  let failures = 0;
  let last: unknown;
  try {
    const out = await retry(write, {
      signal: hooks.signal,
      onError(error, attempt) {
        failures = attempt;
        last = error;
        hooks.onRetry(sink);
        if (attempt === 1) {
          hooks.log.warn(`${sink} unavailable, retrying`, { sink, error });
          hooks.onDown(sink);
        } else hooks.log.debug(`${sink} still unavailable`, { sink, failures, error });
      },
    });
    if (failures > 0) {
      hooks.log.info(`${sink} resumed`, { sink, failures });
      hooks.onUp(sink);
    }
    return out;
  } catch (error) {
    // Stopped while retrying: what failed, not that the wait was cut short.
    throw failures > 0 && hooks.signal.aborted ? last : error;
  }
}

/**
 * Hooks that pause the source while any sink is down and resume it once
 * every sink is back (unless the layer is stopping), counting each retry.
 */
export function pausingHooks(
  deps: {
    readonly log: Logger;
    readonly source: { pause(): void; resume(): void };
    readonly telemetry: { readonly sinkRetries: { inc(labels: { sink: string }): void } };
  },
  down: Set<string>,
  stopping: () => boolean,
  signal: AbortSignal,
): RetryHooks {
  return {
    log: deps.log,
    onDown: (sink) => {
      down.add(sink);
      deps.source.pause();
    },
    onUp: (sink) => {
      down.delete(sink);
      if (down.size === 0 && !stopping()) deps.source.resume();
    },
    onRetry: (sink) => deps.telemetry.sinkRetries.inc({ sink }),
    signal,
  };
}
