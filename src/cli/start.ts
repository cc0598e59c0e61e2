/**
 * `start`: the whole pipeline in one process. Loads and compiles the plan,
 * opens PostgreSQL (or the embedded PGlite, also served on a local port),
 * applies migrations, opens the lake, starts the source, quota alerts, the
 * speed layer, the batch scheduler, the backfill worker and the HTTP API, and
 * stops them in reverse order on SIGTERM/SIGINT (flush, commit, exit 0 within
 * 10 s).
 *
 * It watches its pipeline file (and reloads on SIGHUP): a valid edit whose
 * changes are all live is applied without a restart, part by part (speed
 * layer switch, batch runner, definitions and backfills, scheduler); an
 * invalid or restart-only edit changes nothing (src/config/reload.ts).
 */
import { parseArgs } from "node:util";
import {
  createReloadController,
  DEFAULT_PATH,
  DEFAULTS_FILE,
  loadPlan,
  type PlanDiff,
  type PlanPart,
  type ReloadController,
  watchFile,
} from "../config/mod.ts";
import type { Plan } from "../config/plan.ts";
import { migrate, openDb, redactUrl, serveEmbedded } from "../db/mod.ts";
import { seedUsers } from "../simulator/mod.ts";
import type { Db } from "../db/db.ts";
import { UserError } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import { openStore } from "../lake/mod.ts";
import { openKafkaFromPlan } from "../kafka/mod.ts";
import type { DeadLetterSink, EventSource } from "../speed/mod.ts";
import { createDbTimelineStore, createSimulatorSource } from "../simulator/mod.ts";
import { type SpeedLayer, startSpeedLayer } from "../speed/mod.ts";
import { type BatchRunner, createBatchRunner } from "../batch/mod.ts";
import { createApp } from "../api/mod.ts";
import { startQuotaAlerts } from "../alerts/mod.ts";
import { registry } from "../metrics.ts";
import {
  type BackfillWorker,
  createBackfillWorker,
  reconcileAtStart,
  recordApplied,
  switchPlanOf,
  switchWrite,
} from "../backfill/mod.ts";

const HELP = `Usage: deno task start [--config pipeline.yaml]

Runs the pipeline declared in pipeline.yaml. With no environment set it needs no
external service: the in-process simulator is the source, the lake is
./data/lake and PostgreSQL is an embedded PGlite in ./data/pglite, served on
127.0.0.1:55432 for psql and Superset.

Environment (see pipeline.yaml): SOURCE=kafka KAFKA_BROKERS=host:9092,
DATABASE_URL=postgres://user:pass@host:5432/db, LAKE_URI=gs://bucket/prefix,
API_PORT, API_TOKEN, ALLOW_SIMULATOR_WRITES=true.`;

/** Time allowed for a clean stop; the process exits anyway after it. */
const STOP_DEADLINE_MS = 9_500;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const plan = await loadPlan(values.config);
  const log = createLogger({ component: "start" });
  describeDefaults(plan, log);
  if (
    plan.source.kind === "simulator" && plan.database.url && !plan.database.allowSimulatorWrites
  ) {
    throw new UserError(
      "refusing to write simulated events into the configured database " +
        `(${redactUrl(plan.database.url)}): set ALLOW_SIMULATOR_WRITES=true ` +
        "(database.allow_simulator_writes) or use SOURCE=kafka",
    );
  }

  const stops: { name: string; stop: () => Promise<unknown> }[] = [];
  const stopAll = async () => {
    for (const s of stops.reverse()) {
      try {
        await s.stop();
      } catch (e) {
        log.error("stop failed", { part: s.name, error: e });
      }
    }
  };

  try {
    const db = await openDatabase(plan);
    stops.push({ name: "database", stop: () => db.close() });
    const applied = await migrate(db);
    log.info("database ready", { backend: db.kind, migrations_applied: applied.applied });
    if (plan.source.kind === "simulator") {
      const n = await seedUsers(db, { devices: plan.source.simulator.devices });
      log.info("simulator users seeded", { inserted: n, devices: plan.source.simulator.devices });
    }
    if (!plan.database.url && plan.database.embedded.port > 0) {
      const server = await serveEmbedded(db, {
        host: plan.database.embedded.host,
        port: plan.database.embedded.port,
      });
      stops.push({ name: "embedded-server", stop: () => server.close() });
      log.info("embedded PostgreSQL served", { url: server.url });
    }

    const store = openStore(plan.lake);
    const topic = plan.source.kafka.topic;
    // Metrics edited while the pipeline was down are handled like a reload,
    // before the speed layer resumes at exactly the offsets this switches at.
    await reconcileAtStart(db, topic, plan, log.child({ component: "backfill" }));
    const { source, deadLetters } = await openSource(plan, db);
    if (deadLetters) stops.push({ name: "dead-letters", stop: () => deadLetters.close() });

    // Quota alerts ride along the speed layer's flushes and the batch layer's
    // hours; they stop after the speed layer, so its last flush's alerts are
    // handed to the outbox (what is not delivered yet goes out after a restart).
    const alerts = plan.speed.quotaAlerts.enabled
      ? await startQuotaAlerts({ plan, db, log: log.child({ component: "quota_alerts" }) })
      : undefined;
    if (alerts) stops.push({ name: "quota-alerts", stop: () => alerts.stop() });

    // The scheduler starts after the speed layer (which records the topic's
    // partitions first) and is woken whenever the lake completes another hour.
    let wakeScheduler = () => {};
    const speed = plan.speed.enabled
      ? await startSpeedLayer({
        plan,
        db,
        store,
        source,
        deadLetters,
        log: log.child({ component: "speed" }),
        onLakeHour: () => wakeScheduler(),
        participants: alerts ? [alerts.participant] : undefined,
      })
      : undefined;
    if (speed) stops.push({ name: "speed", stop: () => speed.stop() });

    const batch = createBatchRunner({
      plan,
      db,
      store,
      log: log.child({ component: "batch" }),
      participants: alerts ? [alerts.confirmation] : undefined,
    });
    let scheduler: { stop(): Promise<void>; wake(): void } | undefined;
    const startScheduler = () => {
      scheduler = batch.startScheduler();
      wakeScheduler = () => scheduler?.wake();
    };
    if (plan.batch.enabled) startScheduler();
    stops.push({ name: "scheduler", stop: async () => await scheduler?.stop() });

    // The backfill reads the active plan, which the reload controller below keeps.
    let activePlan = () => plan;
    const backfill = createBackfillWorker({
      db,
      store,
      topic,
      plan: () => activePlan(),
      log: log.child({ component: "backfill" }),
      runHour: async (h) => {
        const s = await batch.runHour(h, "backfill");
        return { status: s.status, runId: s.runId };
      },
    });
    backfill.start();
    stops.push({ name: "backfill", stop: () => backfill.stop() });

    const reloads: ReloadController = createReloadController({
      plan,
      file: watchedFile(values.config, plan) ?? DEFAULTS_FILE,
      log: log.child({ component: "config" }),
      parts: reloadParts({
        topic,
        db,
        speed,
        batch,
        backfill,
        scheduler: {
          running: () => scheduler !== undefined,
          start: startScheduler,
          stop: async () => {
            const s = scheduler;
            scheduler = undefined;
            wakeScheduler = () => {};
            await s?.stop();
          },
          wake: () => scheduler?.wake(),
        },
      }),
    });

    activePlan = () => reloads.plan;

    if (plan.api.enabled) {
      const app = createApp({
        plan,
        db,
        store,
        speed,
        batch,
        registry,
        source,
        alerts: alerts?.feed,
        config: reloads,
        backfill,
      });
      const server = Deno.serve({
        hostname: plan.api.host,
        port: plan.api.port,
        onListen: ({ hostname, port }) =>
          log.info("API listening", { url: `http://${hostname}:${port}` }),
      }, app.fetch);
      // Open alert streams would hold the shutdown: they end first.
      stops.push({
        name: "api",
        stop: async () => {
          await alerts?.feed.close();
          await server.shutdown();
        },
      });
    }

    // Reloads: the file's saves, and SIGHUP.
    const file = watchedFile(values.config, plan);
    const reload = (trigger: "watch" | "signal") => void reloads.reload(trigger);
    if (file) {
      const watch = await watchFile(file, () => reload("watch"), {
        log: log.child({ component: "config" }),
      });
      stops.push({ name: "watch", stop: () => Promise.resolve(watch.close()) });
      log.info("watching the pipeline file: saved edits are applied without a restart", {
        file,
        generation: 1,
        hash: reloads.status().hash,
      });
    }
    const onHup = () => reload("signal");
    try {
      Deno.addSignalListener("SIGHUP", onHup);
      stops.push({
        name: "sighup",
        stop: () => Promise.resolve(Deno.removeSignalListener("SIGHUP", onHup)),
      });
    } catch (error) {
      log.warn("no SIGHUP on this platform: reloads follow the file's saves only", { error });
    }

    const signal = await waitForSignal(speed?.done);
    log.info("stopping", { signal });
    const deadline = setTimeout(() => {
      log.error("clean stop took too long, exiting", { deadline_ms: STOP_DEADLINE_MS });
      Deno.exit(1);
    }, STOP_DEADLINE_MS);
    await stopAll();
    clearTimeout(deadline);
    log.info("stopped cleanly");
    return 0;
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** The pipeline file to watch as given (problems name it so), or undefined on built-in defaults. */
function watchedFile(given: string | undefined, plan: Plan): string | undefined {
  if (plan.file === DEFAULTS_FILE) return undefined;
  return given ?? DEFAULT_PATH;
}

interface PartsDeps {
  readonly topic: string;
  readonly db: Db;
  readonly speed?: SpeedLayer;
  readonly batch: BatchRunner;
  readonly backfill: BackfillWorker;
  readonly scheduler: {
    running(): boolean;
    start(): void;
    stop(): Promise<void>;
    wake(): void;
  };
}

/** How many times a definitions write is tried before a reload fails. */
const RECORD_ATTEMPTS = 5;

/**
 * The running parts, in the order a reload applies them: the speed layer's
 * switch first (the one that can fail; it changes nothing if it does), then
 * the batch runner, the recorded definitions and queued batch hours (which
 * need the runner's new plan), and the scheduler.
 */
function reloadParts(d: PartsDeps): PlanPart[] {
  const speedPart: PlanPart = {
    name: "speed",
    async apply(next: Plan, diff: PlanDiff, gen) {
      if (!d.speed || !diff.speedSwitch) return;
      const sp = switchPlanOf(d.topic, next, diff, Date.now(), gen.generation);
      const r = await d.speed.applyPlan({
        next,
        added: diff.speedMetrics.added.map((m) => m.name),
        changed: diff.speedMetrics.changed.map((m) => m.name),
        removed: diff.speedMetrics.removed,
        settings: diff.changes.filter((c) => c.applies?.[0] === "speed").map((c) => c.key),
        switchWrite: (at) => switchWrite(sp, at),
      });
      d.backfill.wake();
      return { switch_offsets: Object.fromEntries(r.switchOffsets) };
    },
  };
  const batchPart: PlanPart = {
    name: "batch",
    apply(next: Plan) {
      d.batch.applyPlan(next);
      return Promise.resolve();
    },
  };
  const historyPart: PlanPart = {
    name: "definitions",
    async apply(next: Plan, diff: PlanDiff) {
      const changes = {
        speed: diff.speedMetrics,
        batch: diff.batchMetrics,
        speedRecorded: next.speed.enabled,
      };
      let hours: number[] = [];
      for (let attempt = 1;; attempt++) {
        try {
          hours = await d.db.transaction((tx) =>
            recordApplied(tx, d.topic, next, changes, Date.now())
          );
          break;
        } catch (e) {
          if (attempt >= RECORD_ATTEMPTS) throw e;
          await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
        }
      }
      d.backfill.wake();
      return hours.length ? { batch_hours_queued: hours.length } : undefined;
    },
  };
  const schedulerPart: PlanPart = {
    name: "scheduler",
    async apply(next: Plan) {
      if (next.batch.enabled && !d.scheduler.running()) d.scheduler.start();
      else if (!next.batch.enabled && d.scheduler.running()) await d.scheduler.stop();
      else d.scheduler.wake();
    },
  };
  return [speedPart, batchPart, historyPart, schedulerPart];
}

function openDatabase(plan: Plan): Promise<Db> {
  // openDb already turns connection failures into one-line UserErrors.
  return openDb({
    url: plan.database.url,
    embeddedDir: plan.database.url ? undefined : plan.database.embedded.dir,
    maxConnections: plan.database.maxConnections,
  });
}

async function openSource(
  plan: Plan,
  db: Db,
): Promise<{ source: EventSource; deadLetters?: DeadLetterSink }> {
  if (plan.source.kind === "simulator") {
    // The timeline lives beside the speed layer's progress (same topic name),
    // so offsets it recorded come back with the same messages after a restart.
    const source = createSimulatorSource({
      simulator: plan.source.simulator,
      timeline: createDbTimelineStore(db, plan.source.kafka.topic),
      partitions: 3,
      maxPayloadBytes: plan.schema.maxPayloadBytes,
    });
    return { source };
  }
  return await openKafkaFromPlan(plan.source.kafka);
}

/** Says which embedded defaults are active and how to point each part elsewhere. */
function describeDefaults(plan: Plan, log: Logger): void {
  if (plan.source.kind === "simulator") {
    log.info("source: in-process simulator (default)", {
      antennas: plan.source.simulator.antennas,
      devices: plan.source.simulator.devices,
      rate: plan.source.simulator.rate,
      hint: "set SOURCE=kafka and KAFKA_BROKERS=host:9092 to consume topic " +
        `"${plan.source.kafka.topic}" from Kafka`,
    });
  } else {
    log.info("source: Kafka", {
      brokers: plan.source.kafka.brokers,
      topic: plan.source.kafka.topic,
    });
  }
  if (plan.database.url) {
    log.info("database: PostgreSQL", { url: redactUrl(plan.database.url) });
  } else {
    log.info("database: embedded PGlite (default)", {
      dir: plan.database.embedded.dir,
      hint: "set DATABASE_URL=postgres://user:pass@host:5432/db to use PostgreSQL or Cloud SQL",
    });
  }
  log.info(`lake: ${plan.lake.kind === "file" ? "local folder" : "Google Cloud Storage"}`, {
    uri: plan.lake.uri,
    hint: plan.lake.kind === "file" ? "set LAKE_URI=gs://bucket/prefix to use GCS" : undefined,
  });
}

/** A signal this soon after the first is the same request delivered twice. */
const DUPLICATE_SIGNAL_MS = 2_000;

/**
 * Resolves on the first SIGTERM/SIGINT, or when the speed layer ends by
 * itself. A terminal's Ctrl-C or systemd's stop reaches both `deno task` and
 * this process, and `deno task` forwards it again: duplicates are ignored.
 * A signal repeated later means "stop now" and exits at once.
 */
function waitForSignal(done?: Promise<void>): Promise<string> {
  return new Promise((resolve) => {
    let first = 0;
    const handler = (sig: Deno.Signal) => () => {
      if (first === 0) {
        first = Date.now();
        resolve(sig);
      } else if (Date.now() - first > DUPLICATE_SIGNAL_MS) {
        console.error(`error: ${sig} again while stopping: exiting without a clean stop`);
        Deno.exit(130);
      }
    };
    Deno.addSignalListener("SIGTERM", handler("SIGTERM"));
    Deno.addSignalListener("SIGINT", handler("SIGINT"));
    done?.then(() => resolve("speed layer ended"));
  });
}
