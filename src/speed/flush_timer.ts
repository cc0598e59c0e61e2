import { delay } from "../async/delay.ts";

/**
 * When the speed layer flushes next: `flush_interval` after the last flush
 * while it keeps up, at once when something asks for it (a window closed,
 * a partition waits for its rows to be taken), and never sooner than
 * `earlyMinMs` after the last one when the request was already pending as
 * the wait began, so a burst of requests does not turn into a flush per batch.
 */
export class FlushTimer {
  #requested = false;
  #last = 0;
  #wake: AbortController | undefined;

  /**
   * @param everyMs the flush interval
   * @param earlyMinMs least time between flushes when a flush is requested. Default 50.
   */
  constructor(public everyMs: number, readonly earlyMinMs = 50) {}

  /** Asks for a flush now (ends a wait in progress). */
  request(): void {
    this.#requested = true;
    this.#wake?.abort();
  }

  /** A flush starts now: the request is served. */
  started(): void {
    this.#requested = false;
    this.#last = Date.now();
  }

  /** Resolves when the next flush is due, or at `interrupt()`. */
  async wait(): Promise<void> {
    const next = this.#last + (this.#requested ? this.earlyMinMs : this.everyMs);
    const wake = this.#wake = new AbortController();
    await delay(Math.max(0, next - Date.now()), { signal: wake.signal }).catch(() => {});
    if (this.#wake === wake) this.#wake = undefined;
  }

  /** Ends a wait in progress (stopping). */
  interrupt(): void {
    this.#wake?.abort();
  }
}
