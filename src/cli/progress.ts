/**
 * A one-line progress bar on a terminal's stderr, or a plain line now and
 * then when stderr is not a terminal (logs, CI).
 */

export interface ProgressBarOptions {
  /** Write a plain line at most this often when not on a terminal. Default 5 s. */
  readonly plainEveryMs?: number;
  /** Draw on a terminal. Default: whether stderr is one. */
  readonly tty?: boolean;
}

export class ProgressBar {
  readonly #tty: boolean;
  readonly #every: number;
  readonly #enc = new TextEncoder();
  #last = 0;

  constructor(readonly title: string, opts: ProgressBarOptions = {}) {
    this.#tty = opts.tty ?? Deno.stderr.isTerminal();
    this.#every = opts.plainEveryMs ?? 5_000;
  }

  /** Shows `fraction` (0..1) done, with `detail` after the bar. */
  update(fraction: number, detail = ""): void {
    const pct = `${(Math.max(0, Math.min(1, fraction)) * 100).toFixed(1)}%`;
    if (!this.#tty) {
      if (Date.now() - this.#last < this.#every) return;
      this.#last = Date.now();
      this.#write(`${this.title}: ${pct} ${detail}\n`);
      return;
    }
    const width = 30;
    const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
    const bar = "#".repeat(filled) + "-".repeat(width - filled);
    this.#write(`\r\x1b[K${this.title} [${bar}] ${pct} ${detail}`);
  }

  /** Ends the bar's line. */
  done(): void {
    if (this.#tty) this.#write("\r\x1b[K");
  }

  #write(s: string): void {
    Deno.stderr.writeSync(this.#enc.encode(s));
  }
}
