/**
 * Front door of the Spark engine: the engine a plan asks for. `batch.engine:
 * process` is no engine here (the job computes in process); `spark` runs each
 * hour's script with `spark-sql` on `batch.spark.master`, or on Dataproc when
 * `batch.spark.dataproc` is set (dataproc.ts). Spark's home is `batch.spark.home`, else
 * `SPARK_HOME`, else the one `deno task stack up spark` installed; a gs://
 * lake adds the GCS connector that the stack downloaded, unless the user's
 * conf names jars itself.
 */
import type { DataprocPlan, Plan } from "../../config/plan.ts";
import type { Queryable } from "../../db/mod.ts";
import { log as rootLog } from "../../log.ts";
// The stack's Spark file alone: its front door would load every service's client.
import { GCS_CONNECTOR_JAR, stackSparkHome } from "../../stack/spark.ts";
import type { HourEngine } from "../engine.ts";
import { sparkEngine, type SparkRunner } from "./engine.ts";
import { type DataprocTarget, googleToken, runDataprocSqlBatch } from "./dataproc.ts";
import { SparkRunError } from "./errors.ts";
import { sparkSqlRunner } from "./runner.ts";

export { SparkRunError } from "./errors.ts";
export { renderHourScript } from "./render.ts";
export { sparkEngine, type SparkJob, type SparkRunner } from "./engine.ts";

const log = rootLog.child({ component: "batch" });

/** Sizing the engine sets unless `batch.spark.conf` does: an hour is small work for a cluster. */
const DEFAULT_CONF: Readonly<Record<string, string>> = {
  // 200 shuffle partitions (Spark's default) cost more than an hour's rows on small clusters.
  "spark.sql.shuffle.partitions": "8",
  // The spark-sql CLI would otherwise start a Derby Hive metastore: a minute on a busy machine.
  "spark.sql.catalogImplementation": "in-memory",
};

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/** The runner of `batch.spark`: spark-sql on its master (Dataproc when configured). */
function runnerFor(plan: Plan, options: EngineOptions): SparkRunner {
  const spark = plan.batch.spark;
  if (spark.dataproc) return dataprocRunner(plan, spark.dataproc, options);
  return async (job) => {
    const home = spark.home ?? Deno.env.get("SPARK_HOME") ?? await stackSparkHome();
    if (!home) {
      throw new SparkRunError(
        "no Spark found: set batch.spark.home or SPARK_HOME, or run `deno task stack up spark`",
      );
    }
    const jar = job.gcs && !spark.conf["spark.jars"] && await exists(GCS_CONNECTOR_JAR)
      ? GCS_CONNECTOR_JAR
      : undefined;
    const run = sparkSqlRunner({
      home,
      master: spark.master,
      conf: { ...DEFAULT_CONF, ...spark.conf },
      timeoutMs: spark.timeoutMs,
      maxExecutorFailures: spark.maxExecutorFailures,
      gcs: { jar, endpoint: plan.lake.gcsEndpoint, projectId: plan.lake.gcsProjectId },
    });
    return await run(job);
  };
}

/**
 * Each hour as a Dataproc Serverless batch: the script and the user snapshot
 * already lie beside the lake on gs://, the batch reads and writes there
 * (Dataproc's runtime has the GCS connector), and its ids come from the run.
 */
function dataprocRunner(plan: Plan, d: DataprocPlan, options: EngineOptions): SparkRunner {
  const target: DataprocTarget = {
    project: d.project,
    region: d.region,
    serviceAccount: d.serviceAccount,
    subnetwork: d.subnetwork,
    staging: d.staging ?? plan.lake.uri,
    endpoint: d.endpoint,
  };
  const token = options.dataprocToken ?? googleToken();
  return async (job) => {
    await runDataprocSqlBatch(
      target,
      { runKey: job.runKey, queryFileUri: job.scriptUri, variables: { ...job.variables } },
      {
        token,
        timeoutMs: plan.batch.spark.timeoutMs,
        pollMs: options.dataprocPollMs,
        onSubmitted: async (consoleUrl) => {
          log.info("dataproc batch submitted", { run_key: job.runKey, console: consoleUrl });
          await job.onConsoleUrl?.(consoleUrl);
        },
      },
    );
  };
}

export interface EngineOptions {
  /**
   * Dataproc's access token. Default: Application Default Credentials
   * (googleToken); tests inject one, so nothing probes a metadata server.
   */
  readonly dataprocToken?: () => Promise<string>;
  /** Wait between two looks at a Dataproc batch's state, ms. Default 10,000. */
  readonly dataprocPollMs?: number;
  /** batch_runs' database: a run first removes the files that runs which died left (sweep.ts). */
  readonly db?: Queryable;
}

/** The engine `plan.batch.engine` names; undefined = in process. */
export function engineFor(plan: Plan, options: EngineOptions = {}): HourEngine | undefined {
  if (plan.batch.engine !== "spark") return undefined;
  return sparkEngine({ runner: runnerFor(plan, options), db: options.db });
}
