/**
 * Errors of the batch layer that callers act on. `HourBusyError` means another
 * run (in this process or another one) holds the hour; the API maps it to 409
 * through `UserError.status`. `UnknownDevicesError` is the `fail` policy for
 * devices without user metadata.
 */
import { UserError } from "../errors.ts";
import { hourLabel } from "./hours.ts";
import { BYTES_PER_ROW } from "./capacity.ts";

export class HourBusyError extends UserError {
  /** Start of the busy hour, epoch ms. */
  readonly hour: number;
  /** The run holding it, when known. */
  readonly runningRunId?: string;
  constructor(hour: number, runningRunId?: string) {
    super(
      `hour ${hourLabel(hour)} is already running${
        runningRunId ? ` (run ${runningRunId})` : ""
      }: try again when it has finished`,
      { status: 409 },
    );
    this.name = "HourBusyError";
    this.hour = hour;
    this.runningRunId = runningRunId;
  }
}

/** An hour with more lake rows than the in-process engine reads (capacity.ts). */
export class HourTooLargeError extends Error {
  constructor(readonly rows: number, readonly limit: number, readonly fromMemory: boolean) {
    const n = (x: number) => x.toLocaleString("en-US");
    super(
      `the hour holds ${n(rows)} lake rows, more than the in-process engine reads ` +
        `(batch.process_max_rows: ${n(limit)}${
          fromMemory
            ? `, from half of this machine's memory at about ${BYTES_PER_ROW} bytes a row`
            : ""
        }): run hours this large on Spark (batch.engine: spark, docs/scaling.md), ` +
        "or raise batch.process_max_rows",
    );
    this.name = "HourTooLargeError";
  }
}

export class UnknownDevicesError extends Error {
  constructor(readonly devices: number, readonly rows: number, readonly sample: string[]) {
    super(
      `${rows} rows from ${devices} devices have no user metadata (e.g. ${
        sample.map((s) => `"${s}"`).join(", ")
      }) and batch.unknown_device.policy is "fail"`,
    );
    this.name = "UnknownDevicesError";
  }
}
