/**
 * How many lake rows the in-process engine reads in one hour. Its memory
 * grows with the hour (its columns, codes and the dedupe key: about 30 bytes
 * a row measured at 36 million rows, BENCHMARKS.md; 40 leaves room), and it
 * shares the process with the speed layer and the API: an hour that does not
 * fit must fail its run, not the process.
 */

/** Bytes of this process's memory per lake row the in-process engine reads. */
export const BYTES_PER_ROW = 40;

/**
 * The row limit: `batch.process_max_rows` when set, else half of the
 * machine's memory at BYTES_PER_ROW.
 *
 * @example processRowLimit(undefined, 24 * 2 ** 30) // { limit: 322122547, fromMemory: true }
 */
export function processRowLimit(
  configured: number | undefined,
  totalMemoryBytes: number,
): { limit: number; fromMemory: boolean } {
  if (configured !== undefined) return { limit: configured, fromMemory: false };
  return { limit: Math.floor(totalMemoryBytes / 2 / BYTES_PER_ROW), fromMemory: true };
}
