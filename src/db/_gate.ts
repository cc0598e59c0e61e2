/**
 * A first-come first-served async mutex. PGlite is one backend session shared
 * by the in-process layers and the wire-protocol clients; the gate makes sure
 * one of them at a time owns it for a whole statement or transaction.
 */
export class Gate {
  #tail: Promise<void> = Promise.resolve();
  #held = false;

  /** Resolves with a release function once the caller owns the gate. */
  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const turn = this.#tail.then(() => {
      this.#held = true;
      let done = false;
      return () => {
        if (done) return; // releasing twice must not free the next owner's turn
        done = true;
        this.#held = false;
        release();
      };
    });
    this.#tail = next;
    return turn;
  }

  get held(): boolean {
    return this.#held;
  }
}
