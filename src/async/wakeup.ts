/**
 * A worker's wake-up call: it sleeps between rounds of work, and whoever
 * hands it new work wakes it at once instead of leaving it to its timer.
 */
import { pause } from "./delay.ts";

/**
 * `wait(ms)` resolves after `ms`, or as soon as `wake()` is called (also
 * when it was called since the last wait: a wake-up is never lost), or when
 * `signal` aborts; it never rejects.
 *
 * @example
 * const wakeup = new Wakeup();
 * queue.onAdd = () => wakeup.wake();
 * while (!stopping.signal.aborted) {
 *   await drain(queue);
 *   await wakeup.wait(10_000, stopping.signal);
 * }
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
    return pause(ms, ac.signal).finally(() => {
      this.#resolve = undefined;
      signal?.removeEventListener("abort", onAbort);
    });
  }
}
