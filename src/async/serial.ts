/**
 * Running async tasks one after another, in the order they are queued: the
 * one home of the `tail = tail.then(task)` chain.
 */

/** Options of {@linkcode Serial}. */
export interface SerialOptions {
  /**
   * Once aborted, tasks that have not started are skipped: their promises
   * reject with `signal.reason`. A running task is not interrupted (it may
   * watch the signal itself). Default: none, every queued task runs.
   */
  readonly signal?: AbortSignal;
}

/**
 * A queue of async tasks run one at a time. Each `run` resolves or rejects
 * with its own task's outcome; a failed task does not stop the ones after it.
 *
 * @example
 * const writes = new Serial();
 * const a = writes.run(() => write(1)); // starts now
 * const b = writes.run(() => write(2)); // starts once write(1) has settled
 * await writes.idle(); // both have settled
 */
export class Serial {
  #tail: Promise<unknown> = Promise.resolve();
  readonly #signal?: AbortSignal;

  constructor(options: SerialOptions = {}) {
    this.#signal = options.signal;
  }

  /** Queues `task`; resolves with its result once it has run after every task queued before. */
  run<T>(task: () => Promise<T> | T): Promise<T> {
    const turn = this.#tail.then(() => {
      this.#signal?.throwIfAborted();
      return task();
    });
    this.#tail = turn.catch(() => {});
    return turn;
  }

  /** Resolves once every task queued so far has settled (never rejects). */
  idle(): Promise<void> {
    return this.#tail.then(() => {});
  }
}
