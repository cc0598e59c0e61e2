/**
 * `deno task backfill`: recompute a metric's history by hand, or delete the
 * rows of a metric no longer declared. Beside a running `start` or alone; a
 * progress bar on a terminal, a line now and then otherwise; a summary on
 * stdout. Exit code 0 done, 1 failed, 2 bad arguments.
 */
import { loadPlan } from "../config/mod.ts";
import type { MetricPlan, Plan } from "../config/plan.ts";
import { HOUR_MS } from "../core/window.ts";
import { migrate, openPlanDb } from "../db/mod.ts";
import type { Db } from "../db/db.ts";
import { UserError } from "../errors.ts";
import { openStore } from "../lake/mod.ts";
import { createLogger } from "../log.ts";
import {
  batchedHoursFrom,
  createBatchRunner,
  hourLabel,
  hourRange,
  parseHour,
} from "../batch/mod.ts";
import { processHolder } from "../holder.ts";
import { ProgressBar } from "./progress.ts";
import { parsedOrExit, runMain, strictArgs } from "./run.ts";
import { dropMetric, hasRows, startManualBackfill } from "../backfill/manual.ts";
import { createBackfillWorker, type RowProgress } from "../backfill/worker.ts";

const USAGE =
  `Usage: deno task backfill --metric NAME [--from 2026-11-28T00] [--to 2026-11-28T23] [--config pipeline.yaml]
       deno task backfill --drop NAME [--config pipeline.yaml]

--metric NAME  Recompute NAME's history. A speed metric: its 5-minute windows of the
               hours --from..--to (default: every hour the lake holds, up to now) are
               replayed from the lake up to the offsets the speed layer has stored, and
               meet the windows it writes from there. A batch metric: those hours are
               run again by the batch layer (default: every hour it has batched).
               Beside a running pipeline, the lake trails its stored offsets by up to
               lake.roll.max_age: the replay waits for it (the log says so) and finishes
               here. It gives up (exit 1) only when no pipeline writes the lake.
--drop NAME    Delete every row of NAME, a metric no longer in the pipeline file
               (removed metrics keep their past rows until dropped).`;

interface Args {
  metric?: string;
  drop?: string;
  from?: number;
  to?: number;
  config?: string;
}

function parse(args: string[]): Args | "help" {
  const v = strictArgs(args, {
    metric: { type: "string" },
    drop: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    config: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (v.help) return "help";
  if ((v.metric === undefined) === (v.drop === undefined)) {
    throw new UserError("give --metric NAME or --drop NAME (run with --help for usage)");
  }
  if (v.drop !== undefined && (v.from !== undefined || v.to !== undefined)) {
    throw new UserError("--drop deletes every row of the metric: --from/--to do not apply");
  }
  const from = v.from === undefined ? undefined : parseHour(v.from, "--from");
  const to = v.to === undefined ? undefined : parseHour(v.to, "--to");
  if (from !== undefined && to !== undefined && to < from) {
    throw new UserError(`--to ${v.to} is before --from ${v.from}`);
  }
  return { metric: v.metric, drop: v.drop, from, to, config: v.config };
}

export async function main(args: string[]): Promise<number> {
  const parsed = parsedOrExit(parse, args, USAGE);
  if (typeof parsed === "number") return parsed;
  const plan = await loadPlan(parsed.config);
  const db = await openPlanDb(plan.database, { maxConnections: 2 });
  try {
    await migrate(db);
    if (parsed.drop !== undefined) return await drop(db, plan, parsed.drop);
    return await backfill(db, plan, parsed.metric!, parsed.from, parsed.to);
  } finally {
    await db.close();
  }
}

async function drop(db: Db, plan: Plan, name: string): Promise<number> {
  if (!(await hasRows(db, name))) {
    throw new UserError(`no rows of a metric "${name}" in the database: nothing to drop`);
  }
  const counts = await dropMetric(db, plan, name);
  console.log(
    `dropped "${name}": ${Object.entries(counts).map(([t, n]) => `${t}=${n}`).join(" ")}`,
  );
  return 0;
}

async function backfill(
  db: Db,
  plan: Plan,
  name: string,
  from: number | undefined,
  to: number | undefined,
): Promise<number> {
  const speed = plan.speed.metrics.find((m) => m.name === name);
  const batch = plan.batch.metrics.find((m) => m.name === name);
  if (!speed && !batch) {
    const names = [...new Set([...plan.speed.metrics, ...plan.batch.metrics].map((m) => m.name))];
    throw new UserError(
      `unknown metric "${name}" (${plan.file} declares: ${names.join(", ") || "none"})`,
    );
  }
  let ok = true;
  if (speed) ok = await backfillSpeed(db, plan, speed, from, to) && ok;
  if (batch) ok = await backfillBatch(db, plan, name, from, to) && ok;
  return ok ? 0 : 1;
}

/**
 * Recomputes a speed metric's windows from the lake. Beside a running
 * pipeline the lake trails the speed layer's stored offsets by up to a roll
 * (`lake.roll.max_age`): the replay waits for it, saying so, and finishes
 * here, so the summary below is the whole backfill. Only when no speed layer
 * moves the lake (the pipeline is stopped and its last files were never
 * written) does it give the rows back and exit 1 saying so.
 */
async function backfillSpeed(
  db: Db,
  plan: Plan,
  metric: MetricPlan,
  from: number | undefined,
  to: number | undefined,
): Promise<boolean> {
  const topic = plan.source.kafka.topic;
  const holder = processHolder();
  const leaseMs = 60_000;
  const t0 = Date.now();
  const stops = await startManualBackfill(
    db,
    topic,
    { metric, fromMs: from ?? -Infinity, untilMs: to === undefined ? Infinity : to + HOUR_MS },
    holder,
    leaseMs,
  );
  const bar = new ProgressBar(`backfill ${metric.name}`);
  const rows = new Map<number, RowProgress>();
  const worker = createBackfillWorker({
    db,
    store: openStore(plan.lake),
    topic,
    plan: () => plan,
    log: createLogger({ component: "backfill" }),
    holder,
    leaseMs,
    restRatio: 0, // by hand: as fast as it goes (the running pipeline has its own process)
    progressEveryMs: 60_000,
    onProgress: (p) => {
      rows.set(p.partition, p);
      let total = 0, done = 0;
      for (const stop of stops.values()) total += stop;
      for (const [part, r] of rows) done += r.finished ? stops.get(part) ?? 0 : r.nextOffset;
      bar.update(
        total === 0 ? 1 : done / total,
        `partition ${p.partition} offset ${p.nextOffset}`,
      );
    },
  });
  let outcome: "done" | "gave_up";
  try {
    outcome = await worker.drain({ metrics: [metric.name], giveUpWhenStalled: true });
  } finally {
    bar.done();
  }
  if (outcome === "gave_up") console.error(worker.gaveUpBecause);
  const status = (await worker.status()).metrics.find((m) => m.metric === metric.name);
  const ok = status?.state === "finished";
  console.log(
    `${metric.name} (speed) ${ok ? "finished" : "not finished"} partitions=${stops.size} ` +
      `events=${status?.events ?? 0} rows_written=${status?.rowsWritten ?? 0} ` +
      `from=${from === undefined ? "lake start" : hourLabel(from)} ` +
      `to=${to === undefined ? "now" : hourLabel(to)} ` +
      `stop_offsets=${JSON.stringify(Object.fromEntries(stops))} ` +
      `duration=${((Date.now() - t0) / 1000).toFixed(2)}s`,
  );
  return ok;
}

/** Runs a batch metric's hours again (default: every hour the batch layer completed). */
async function backfillBatch(
  db: Db,
  plan: Plan,
  name: string,
  from: number | undefined,
  to: number | undefined,
): Promise<boolean> {
  const log = createLogger({ component: "batch" });
  const runner = createBatchRunner({ plan, db, store: openStore(plan.lake), log });
  const done = (await batchedHoursFrom(db, from ?? -Infinity))
    .filter((h) => to === undefined || h <= to);
  const hours = from !== undefined && to !== undefined ? hourRange(from, to) : done;
  const bar = new ProgressBar(`batch ${name}`);
  let ok = 0;
  for (const [i, h] of hours.entries()) {
    bar.update(i / Math.max(1, hours.length), `running ${hourLabel(h)}`);
    try {
      const s = await runner.runHour(h, "backfill");
      if (s.status === "succeeded") ok++;
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      log.warn("batch hour not run", { hour: hourLabel(h), error: err.message });
    }
  }
  bar.done();
  console.log(`${name} (batch) ${ok} of ${hours.length} hours succeeded`);
  return ok === hours.length;
}

if (import.meta.main) await runMain(main);
