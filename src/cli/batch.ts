/**
 * `deno task batch`: run the batch layer for one hour or a range of hours,
 * through the same runner as the scheduler (trigger `manual` for --hour,
 * `backfill` for --from/--to). A progress bar on stderr when it is a
 * terminal, plain lines otherwise; one summary line per hour on stdout; exit
 * code 1 if any hour failed, 2 for bad arguments.
 */
import { loadPlan } from "../config/mod.ts";
import { migrate, openPlanDb } from "../db/mod.ts";
import { openStore } from "../lake/mod.ts";
import { UserError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { ProgressBar } from "./progress.ts";
import { parsedOrExit, runMain, strictArgs } from "./run.ts";
import { hourLabel, hourRange, parseHour } from "../batch/hours.ts";
import { HOUR_MS } from "../core/mod.ts";
import { createBatchRunner } from "../batch/mod.ts";
import type { RunSummary, Trigger } from "../batch/types.ts";

const USAGE = `Usage: deno task batch --hour 2026-11-28T10 [--config pipeline.yaml]
       deno task batch --from 2026-11-28T00 --to 2026-11-28T05 [--config pipeline.yaml]

Runs the batch layer for one UTC hour, or every hour from --from to --to
(both included), replacing those hours' rows in bytes_hourly and user_quota_limit.`;

/** Longest range accepted in one call: a typo in a year should not queue 8,760 hours. */
const MAX_HOURS = 24 * 31;

interface Args {
  hours: number[];
  trigger: Trigger;
  config?: string;
}

function parse(args: string[], now = Date.now()): Args | "help" {
  const v = strictArgs(args, {
    hour: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    config: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) return "help";
  if (v.hour !== undefined) {
    if (v.from !== undefined || v.to !== undefined) {
      throw new UserError("give either --hour or --from/--to, not both");
    }
    const hour = parseHour(v.hour, "--hour");
    checkEnded(hour, now, "--hour");
    return { hours: [hour], trigger: "manual", config: v.config };
  }
  if (v.from === undefined || v.to === undefined) {
    throw new UserError("give --hour, or both --from and --to (run with --help for usage)");
  }
  const from = parseHour(v.from, "--from");
  const to = parseHour(v.to, "--to");
  if (to < from) throw new UserError(`--to ${v.to} is before --from ${v.from}`);
  const hours = hourRange(from, to);
  if (hours.length > MAX_HOURS) {
    throw new UserError(`the range holds ${hours.length} hours, more than ${MAX_HOURS}`);
  }
  checkEnded(to, now, "--to");
  return { hours, trigger: "backfill", config: v.config };
}

/**
 * An hour still running would be recorded as batched with part of its data,
 * and the serving view would then hide the speed layer's windows for it.
 */
function checkEnded(hour: number, now: number, flag: string): void {
  if (hour + HOUR_MS > now) {
    throw new UserError(
      `${flag} ${hourLabel(hour)} has not ended yet (it ends at ${
        new Date(hour + HOUR_MS).toISOString().slice(11, 16)
      } UTC; the scheduler runs it after its grace)`,
    );
  }
}

/** One line per hour: hour, status, rows read, files, rows written, breaches, duration. */
export function summaryLine(s: RunSummary): string {
  const parts = [
    hourLabel(s.hour),
    s.status.padEnd(9),
    `rows_read=${s.rowsRead}`,
    `files=${s.filesRead}`,
    `rows_written=${s.rowsWritten}`,
    `breaches=${s.breaches}`,
    `unknown_devices=${s.unknownDevices}`,
    `duration=${(s.durationMs / 1000).toFixed(2)}s`,
    `run=${s.runId}`,
  ];
  if (s.note) parts.push(`note="${s.note}"`);
  if (s.error) parts.push(`error="${s.error}"`);
  if (s.consoleUrl) parts.push(`console=${s.consoleUrl}`);
  return parts.join(" ");
}

export async function main(args: string[]): Promise<number> {
  const parsed = parsedOrExit(parse, args, USAGE);
  if (typeof parsed === "number") return parsed;
  const plan = await loadPlan(parsed.config);
  const db = await openPlanDb(plan.database, { maxConnections: 2 });
  try {
    await migrate(db);
    const store = openStore(plan.lake);
    // Per-hour logs repeat the summary lines: keep warnings and errors only.
    const log = createLogger({ component: "batch" });
    const runner = createBatchRunner({ plan, db, store, log });
    // A plain line per hour when stderr is not a terminal.
    const progress = new ProgressBar("batch", { plainEveryMs: 0 });
    const total = parsed.hours.length;
    let failed = 0;
    for (const [i, hour] of parsed.hours.entries()) {
      progress.update(i / total, `${i + 1}/${total}: running ${hourLabel(hour)}`);
      let s: RunSummary;
      try {
        s = await runner.runHour(hour, parsed.trigger);
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        s = {
          runId: "-",
          hour,
          trigger: parsed.trigger,
          status: "conflict",
          rowsRead: 0,
          filesRead: 0,
          rowsWritten: 0,
          breaches: 0,
          unknownDevices: 0,
          unknownRows: 0,
          durationMs: 0,
          error: err.message,
        };
      }
      if (s.status !== "succeeded") failed++;
      progress.done();
      console.log(summaryLine(s));
    }
    if (parsed.hours.length > 1) {
      console.log(`${parsed.hours.length - failed} of ${parsed.hours.length} hours succeeded`);
    }
    return failed > 0 ? 1 : 0;
  } finally {
    await db.close();
  }
}

if (import.meta.main) await runMain(main);
