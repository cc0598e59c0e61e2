/**
 * Waiting a while, abortably: the one sleep of the code base (after Deno
 * std's `async/delay.ts`).
 */

/** Options of {@linkcode delay}. */
export interface DelayOptions {
  /**
   * Ends the wait early: the promise then rejects with `signal.reason` (an
   * `AbortError` `DOMException` unless `abort()` was given one), at once if
   * it is already aborted. Default: none, the wait always runs to its end.
   */
  readonly signal?: AbortSignal;
}

/**
 * Resolves after `ms` milliseconds, or rejects with the signal's reason once
 * it aborts. The timer is cleared on abort, so an aborted wait holds nothing.
 *
 * @example
 * await delay(250);
 * await delay(5_000, { signal: stopping.signal }); // rejects when stopping aborts
 */
export function delay(ms: number, options: DelayOptions = {}): Promise<void> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const abort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", abort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/**
 * Like {@linkcode delay}, but an abort ends the wait by resolving: for loops
 * that look at the signal themselves after each wait (polls, paced workers),
 * where a stop is not an error.
 *
 * @example
 * while (!stopping.signal.aborted) {
 *   await poll();
 *   await pause(1_000, stopping.signal);
 * }
 */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return delay(ms, { signal }).catch(() => {});
}
