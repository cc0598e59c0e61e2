/**
 * Errors of the batch layer that callers act on. `HourBusyError` means another
 * run (in this process or another one) holds the hour; the API maps it to 409
 * through `UserError.status`. `UnknownDevicesError` is the `fail` policy for
 * devices without user metadata.
 */
import { UserError } from "../errors.ts";
import { hourLabel } from "./hours.ts";

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
