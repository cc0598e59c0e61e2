/**
 * Repeating a failing call with capped exponential backoff until it succeeds
 * or is aborted (after Deno std's `async/retry.ts`; its attempt limit is off
 * by default: our sinks retry until they are stopped, never give data up).
 */
import { delay } from "./delay.ts";

/** How long to wait between attempts. */
export interface BackoffOptions {
  /** Wait after the first failure, ms. Default 100. */
  readonly initialMs?: number;
  /** Longest wait, ms. Default 5000. */
  readonly maxMs?: number;
  /** Factor from one wait to the next. Default 2. */
  readonly multiplier?: number;
}

/** Options of {@linkcode retry}. */
export interface RetryOptions extends BackoffOptions {
  /**
   * Stops retrying: before an attempt, after a failed one and during a wait,
   * an aborted signal rejects the call with `signal.reason` (an attempt in
   * progress runs to its end, and its success still counts). Default: none,
   * retries until `fn` succeeds.
   */
  readonly signal?: AbortSignal;
  /**
   * Called after each failed attempt that will be retried, with the error,
   * the attempt's number (1 for the first) and the wait before the next one.
   * Default: none.
   */
  readonly onError?: (error: unknown, attempt: number, nextDelayMs: number) => void;
  /**
   * The last attempt: its failure rejects the call with that error (for a
   * caller that reports the failure instead of waiting it out, e.g. a
   * reload). Default: Infinity.
   */
  readonly maxAttempts?: number;
}

/**
 * The wait after failed attempt `attempt` (1-based): `initialMs` times
 * `multiplier` to the power `attempt - 1`, at most `maxMs`.
 *
 * @example
 * backoffMs(1) // 100
 * backoffMs(4, { initialMs: 200 }) // 1600
 * backoffMs(10) // 5000
 */
export function backoffMs(attempt: number, options: BackoffOptions = {}): number {
  const { initialMs = 100, maxMs = 5_000, multiplier = 2 } = options;
  return Math.min(maxMs, initialMs * multiplier ** Math.max(0, attempt - 1));
}

/**
 * Calls `fn` (with the attempt's number, 1 for the first) until it resolves,
 * waiting `backoffMs(attempt)` after each failure; resolves with its result.
 *
 * @example
 * const rows = await retry(() => db.query(sql), {
 *   signal: stopping.signal,
 *   onError: (error, attempt, nextDelayMs) => log.warn("query failed", { error, attempt, nextDelayMs }),
 * });
 */
export async function retry<T>(
  fn: (attempt: number) => Promise<T> | T,
  options: RetryOptions = {},
): Promise<T> {
  const { signal, onError, maxAttempts = Infinity } = options;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    try {
      return await fn(attempt);
    } catch (error) {
      signal?.throwIfAborted();
      if (attempt >= maxAttempts) throw error;
      const wait = backoffMs(attempt, options);
      onError?.(error, attempt, wait);
      await delay(wait, { signal });
    }
  }
}
