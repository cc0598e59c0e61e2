/**
 * Small async tools of this folder: a delay that an abort signal cuts short,
 * and the backoff of a delivery attempt. Private on purpose: a shared
 * src/async/delay.ts and retry.ts are on their way (another branch); these
 * give way to them then.
 */
import type { RetryPlan } from "../config/plan.ts";

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Wait after failed attempt number `attempt` (1-based): `backoff` doubling,
 * capped at `max_backoff`. No jitter: deliveries of different alerts are
 * already spread by when they were raised.
 *
 * @example backoffAfter(3, { maxAttempts: 10, backoffMs: 1000, maxBackoffMs: 300000 }) // 4000
 */
export function backoffAfter(attempt: number, retry: RetryPlan): number {
  return Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** Math.max(0, attempt - 1));
}

/**
 * A wake-up call: `wait(ms)` resolves after `ms` or as soon as `wake()` is
 * called (also when it was called since the last wait).
 */
export class Wakeup {
  #pending = false;
  #resolve: (() => void) | undefined;

  wake(): void {
    if (this.#resolve) {
      const r = this.#resolve;
      this.#resolve = undefined;
      r();
    } else this.#pending = true;
  }

  wait(ms: number, signal?: AbortSignal): Promise<void> {
    if (this.#pending || signal?.aborted) {
      this.#pending = false;
      return Promise.resolve();
    }
    const ac = new AbortController();
    const onAbort = () => ac.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#resolve = () => ac.abort();
    return delay(ms, ac.signal).finally(() => {
      this.#resolve = undefined;
      signal?.removeEventListener("abort", onAbort);
    });
  }
}
