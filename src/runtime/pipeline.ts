/**
 * The running pipeline, built from the plan in this one place: PostgreSQL
 * (or the embedded PGlite, also served on a local port) with its migrations,
 * the lake, quota alerts, the batch runner and its scheduler, the backfill
 * worker, the reload controller, the HTTP API, the source and the speed
 * layer. One lifecycle: `startPipeline` starts the parts in order, `reload`
 * applies a new plan through the controller, `stop` stops them in reverse.
 *
 * The API opens before the source and the speed layer start (which waits
 * for the source's first poll and, on a loaded machine, may come after a
 * backlog is consumed): `/health` answers at once and `/ready` says which
 * part is still starting.
 */
import { type AlertFeed, type QuotaAlerts, startQuotaAlerts } from "../alerts/mod.ts";
import { createApp } from "../api/mod.ts";
import { createBackfillWorker, reconcileAtStart } from "../backfill/mod.ts";
import { createBatchRunner } from "../batch/mod.ts";
import { DEFAULTS_FILE, type Plan, planHash, watchFile } from "../config/mod.ts";
import type { Db } from "../db/db.ts";
import { redactUrl } from "../db/mod.ts";
import { UserError } from "../errors.ts";
import { type ObjectStore, openStore } from "../lake/mod.ts";
import type { Logger } from "../log.ts";
import { registry } from "../metrics.ts";
import {
  type EventSource,
  type SpeedLayer,
  type SpeedStatus,
  startSpeedLayer,
} from "../speed/mod.ts";
import { createReloadController, type ReloadController } from "./controller.ts";
import { startGeneration } from "./generation.ts";
import { reloadParts, SchedulerSlot } from "./parts.ts";
import { openDatabase, openSource } from "./open.ts";

/** A started pipeline. */
export interface Pipeline {
  /** The reload controller: the active plan, its generation, `reload(trigger)`. */
  readonly reloads: ReloadController;
  /** Resolves when the speed layer ends by itself (never when it is off). */
  readonly done: Promise<void>;
  /** Stops every part, in the reverse order of their start; logs the ones that fail. */
  stop(): Promise<void>;
}

export interface PipelineOptions {
  readonly plan: Plan;
  /**
   * The pipeline file as given (problems name it so): watched, and read by
   * each reload. Undefined on the built-in defaults (nothing to watch).
   */
  readonly file?: string;
  readonly log: Logger;
  /**
   * Aborted when the process is asked to stop while starting: the start
   * stops what it has started (before the next step) and rejects. Default: none.
   */
  readonly signal?: AbortSignal;
}

/** The parts started so far, stopped in reverse. */
export class Stops {
  #parts: { name: string; stop: () => Promise<unknown> }[] = [];
  #first: { name: string; stop: () => Promise<unknown> }[] = [];
  constructor(private readonly log: Logger) {}
  /** `first`: stopped before every other part (the API: nothing is served while parts stop). */
  add(name: string, stop: () => Promise<unknown>, first = false): void {
    (first ? this.#first : this.#parts).push({ name, stop });
  }
  async stopAll(): Promise<void> {
    const all = [...this.#parts.splice(0), ...this.#first.splice(0)];
    for (const s of all.reverse()) {
      try {
        await s.stop();
      } catch (e) {
        this.log.error("stop failed", { part: s.name, error: e });
      }
    }
  }
}

/**
 * Starts the pipeline of `plan`; on a failure, stops what had started and
 * throws.
 *
 * @example
 * const pipeline = await startPipeline({ plan, file: "pipeline.yaml", log });
 * Deno.addSignalListener("SIGHUP", () => void pipeline.reloads.reload("signal"));
 * await pipeline.stop();
 */
export async function startPipeline(o: PipelineOptions): Promise<Pipeline> {
  refuseSimulatorWrites(o.plan);
  const stops = new Stops(o.log);
  try {
    return await startParts(o, stops);
  } catch (e) {
    await stops.stopAll();
    throw e;
  }
}

async function startParts(o: PipelineOptions, stops: Stops): Promise<Pipeline> {
  const { plan, log } = o;
  const topic = plan.source.kafka.topic;
  const db = await openDatabase(plan, log, stops);
  const store = openStore(plan.lake);
  const stored = await startGeneration(db, topic, planHash(plan));
  o.signal?.throwIfAborted();

  // Quota alerts ride along the speed layer's flushes and the batch layer's
  // hours; they stop after the speed layer, so its last flush's alerts are
  // handed to the outbox (what is not delivered yet goes out after a restart).
  const alerts = plan.speed.quotaAlerts.enabled
    ? await startQuotaAlerts({ plan, db, log: log.child({ component: "quota_alerts" }) })
    : undefined;
  if (alerts) stops.add("quota-alerts", () => alerts.stop());
  o.signal?.throwIfAborted();

  const batch = createBatchRunner({
    plan,
    db,
    store,
    log: log.child({ component: "batch" }),
    participants: alerts ? [alerts.confirmation] : undefined,
  });
  const scheduler = new SchedulerSlot(batch);
  const late = new LateParts(plan.source.kind);
  const backfill = createBackfillWorker({
    db,
    store,
    topic,
    plan: () => reloads.plan,
    log: log.child({ component: "backfill" }),
    runHour: async (h) => {
      const s = await batch.runHour(h, "backfill");
      return { status: s.status, runId: s.runId };
    },
  });
  const reloads = createReloadController({
    plan,
    generation: stored.generation,
    appliedAt: stored.appliedAt,
    file: o.file ?? DEFAULTS_FILE,
    log: log.child({ component: "config" }),
    parts: reloadParts({
      topic,
      db,
      log: log.child({ component: "config" }),
      speed: () => late.speed,
      batch,
      backfill,
      scheduler,
    }),
  });
  if (plan.api.enabled) {
    openApi(plan, log, stops, { db, store, batch, backfill, reloads, late, feed: alerts?.feed });
  }

  const speed = await startStreaming(plan, {
    db,
    store,
    log,
    stops,
    late,
    alerts,
    scheduler,
    generation: stored.generation,
    signal: o.signal,
  });
  o.signal?.throwIfAborted();
  stops.add("backfill", () => backfill.stop());
  backfill.start();
  if (o.file) await watchPipelineFile(o.file, reloads, log, stops);
  return { reloads, done: speed?.done ?? new Promise(() => {}), stop: () => stops.stopAll() };
}

/**
 * The source and the speed layer, then the scheduler (which starts after the
 * speed layer has recorded the topic's partitions, and is woken whenever the
 * lake completes another hour). Metrics edited while the pipeline was down
 * are handled like a reload first, so the speed layer resumes at exactly the
 * offsets that switch at.
 */
async function startStreaming(
  plan: Plan,
  d: {
    db: Db;
    store: ObjectStore;
    log: Logger;
    stops: Stops;
    late: LateParts;
    alerts?: QuotaAlerts;
    scheduler: SchedulerSlot;
    generation: number;
    signal?: AbortSignal;
  },
): Promise<SpeedLayer | undefined> {
  const topic = plan.source.kafka.topic;
  const backfillLog = d.log.child({ component: "backfill" });
  await reconcileAtStart(d.db, topic, plan, backfillLog, Date.now(), d.generation);
  d.signal?.throwIfAborted();
  const { source, deadLetters } = await openSource(plan, d.db);
  if (deadLetters) d.stops.add("dead-letters", () => deadLetters.close());
  d.signal?.throwIfAborted();
  d.late.source = source;
  const speed = plan.speed.enabled
    ? await startSpeedLayer({
      plan,
      db: d.db,
      store: d.store,
      source,
      deadLetters,
      log: d.log.child({ component: "speed" }),
      onLakeHour: () => d.scheduler.wake(),
      participants: d.alerts ? [d.alerts.participant] : undefined,
    })
    : undefined;
  if (speed) d.stops.add("speed", () => speed.stop());
  d.late.speed = speed;
  d.late.speedStarted = true;
  d.stops.add("scheduler", () => d.scheduler.stop());
  if (plan.batch.enabled) d.scheduler.start();
  return speed;
}

/** Saves of the pipeline file reload it. */
async function watchPipelineFile(
  file: string,
  reloads: ReloadController,
  log: Logger,
  stops: Stops,
): Promise<void> {
  const configLog = log.child({ component: "config" });
  const watch = await watchFile(file, () => void reloads.reload("watch"), { log: configLog });
  stops.add("watch", () => Promise.resolve(watch.close()), true);
  const { generation, hash } = reloads.status();
  log.info("watching the pipeline file: saved edits are applied without a restart", {
    file,
    generation,
    hash,
  });
}

/** A speed layer's status before its start has returned. */
const STARTING: SpeedStatus = {
  running: false,
  sinksDown: [],
  partitions: [],
  counters: {
    consumed: 0,
    valid: 0,
    deadLetters: 0,
    lateUpdated: 0,
    lateDropped: 0,
    windowsWritten: 0,
    flushes: 0,
  },
};

/** The parts that start after the API opens, as the API reads them meanwhile. */
class LateParts {
  source?: EventSource;
  speed?: SpeedLayer;
  speedStarted = false;
  /** The source probe of `/ready`: not ready until it is open. */
  readonly sourceProbe: { kind: string; lag(): Promise<ReadonlyMap<number, number>> };
  constructor(sourceKind: string) {
    this.sourceProbe = { kind: sourceKind, lag: () => this.#lag() };
  }
  #lag(): Promise<ReadonlyMap<number, number>> {
    return this.source
      ? this.source.lag()
      : Promise.reject(new Error("starting: the source is not open yet"));
  }

  /** The speed layer as `/ready` and `/metrics` read it: `starting` until its start returns. */
  readonly speedStatus = {
    status: (): SpeedStatus => this.speed?.status() ?? STARTING,
    phase: (): "starting" | "running" | "stopped" =>
      !this.speedStarted ? "starting" : this.speed?.status().running ? "running" : "stopped",
  };
}

function openApi(
  plan: Plan,
  log: Logger,
  stops: Stops,
  d: {
    db: Db;
    store: ObjectStore;
    batch: ReturnType<typeof createBatchRunner>;
    backfill: ReturnType<typeof createBackfillWorker>;
    reloads: ReloadController;
    late: LateParts;
    feed?: AlertFeed;
  },
): void {
  const app = createApp({
    plan,
    db: d.db,
    store: d.store,
    speed: plan.speed.enabled ? d.late.speedStatus : undefined,
    batch: d.batch,
    registry,
    source: d.late.sourceProbe,
    alerts: d.feed,
    config: d.reloads,
    backfill: d.backfill,
  });
  const server = Deno.serve({
    hostname: plan.api.host,
    port: plan.api.port,
    onListen: ({ hostname, port }) =>
      log.info("API listening", { url: `http://${hostname}:${port}` }),
  }, app.fetch);
  // Open alert streams would hold the shutdown: they end first.
  stops.add("api", async () => {
    await d.feed?.close();
    await server.shutdown();
  }, true);
}

/** Simulated events never go into a configured database by accident. */
function refuseSimulatorWrites(plan: Plan): void {
  if (
    plan.source.kind === "simulator" && plan.database.url && !plan.database.allowSimulatorWrites
  ) {
    throw new UserError(
      "refusing to write simulated events into the configured database " +
        `(${redactUrl(plan.database.url)}): set ALLOW_SIMULATOR_WRITES=true ` +
        "(database.allow_simulator_writes) or use SOURCE=kafka",
    );
  }
}
