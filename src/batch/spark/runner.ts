/**
 * Runs an hour's script with `spark-sql` on any master `spark-submit`
 * accepts (`local[N]`, `spark://host:port`, YARN, Kubernetes), bounded by a
 * timeout, and turns a failure into a `SparkRunError` carrying Spark's own
 * last meaningful lines. The driver runs in a temporary folder (whatever it
 * leaves in its working directory goes with it); on loopback it
 * binds to 127.0.0.1 and opens no UI. A `gs://` lake adds the GCS connector jar
 * and, for an emulator endpoint, its URL without authentication.
 */
import { SparkRunError } from "./errors.ts";
import { COMPUTE_STATEMENTS } from "./render.ts";
import type { SparkJob, SparkRunner } from "./engine.ts";
import { EXECUTOR_LOGGER, ExecutorWatch } from "./executors.ts";

export interface SparkSqlOptions {
  /** A SPARK_HOME holding `bin/spark-sql`. */
  readonly home: string;
  /** `--master`. */
  readonly master: string;
  /** Extra `--conf key=value`, after (and over) the defaults. */
  readonly conf: Readonly<Record<string, string>>;
  /** The run is killed and fails after this long, ms. */
  readonly timeoutMs: number;
  /** The run is killed and fails once this many of its executors died (executors.ts). */
  readonly maxExecutorFailures: number;
  /** For a `gs://` lake: the GCS connector jar, and an emulator endpoint (no auth) if any. */
  readonly gcs?: { readonly jar?: string; readonly endpoint?: string; readonly projectId?: string };
}

/** Whether the master runs on this machine (the driver can stay on loopback). */
export function loopbackMaster(master: string): boolean {
  return /^local(\[|$)/.test(master) ||
    /^spark:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/.test(master);
}

/** The `--conf` pairs of a run: loopback, UTC, no UI, the GCS connector; then the user's. */
export function sparkConf(options: SparkSqlOptions, job: Pick<SparkJob, "gcs">) {
  const conf: Record<string, string> = {
    "spark.ui.enabled": "false",
    // Progress bars are \r-redrawn lines: noise in the output a failure reports.
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
  };
  if (loopbackMaster(options.master)) {
    conf["spark.driver.host"] = "127.0.0.1";
    conf["spark.driver.bindAddress"] = "127.0.0.1";
  }
  if (job.gcs) {
    conf["spark.hadoop.fs.gs.impl"] = "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem";
    conf["spark.hadoop.fs.AbstractFileSystem.gs.impl"] =
      "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS";
    if (options.gcs?.jar) conf["spark.jars"] = options.gcs.jar;
    if (options.gcs?.endpoint) {
      conf["spark.hadoop.fs.gs.storage.root.url"] = options.gcs.endpoint.replace(/\/?$/, "/");
      conf["spark.hadoop.fs.gs.auth.type"] = "UNAUTHENTICATED";
      // The connector renames with the JSON API's objects.move, which emulators lack
      // (fake-gcs-server answers it with an error); a copy and a delete do the same.
      conf["spark.hadoop.fs.gs.operation.move.enable"] = "false";
    }
    if (options.gcs?.projectId) conf["spark.hadoop.fs.gs.project.id"] = options.gcs.projectId;
  }
  return { ...conf, ...options.conf };
}

/** Lines that say what went wrong: errors and exceptions, not stack frames or INFO chatter. */
/** Spark 4's error classes (`[FAILED_READ_FILE.…]`): the error itself, whatever follows it. */
const ERROR_CLASS = /\[[A-Z][A-Z0-9_]+(\.[A-Z0-9_]+)*\]/;
const MEANINGFUL = /\b(ERROR|Error|Exception|FAILED|Caused by)\b|\[[A-Z][A-Z0-9_.]+\]/;
const LOG_PREFIX = /^\d{2}\/\d{2}\/\d{2} \d{2}:\d{2}:\d{2} (ERROR|WARN|INFO) [\w.$]+: /;

/**
 * The last few meaningful lines of Spark's output, one line; the last
 * non-empty lines when none stands out.
 *
 * @example lastWords("...\n[PATH_NOT_FOUND] Path does not exist: file:/x. SQLSTATE: 42K03\n") // "[PATH_NOT_FOUND] Path does not exist: file:/x. SQLSTATE: 42K03"
 */
export function lastWords(output: string, max = 3): string {
  const lines = output.split("\n").map((l) => l.trim()).filter((l) =>
    l && !l.startsWith("at ") && !/^\.\.\. \d+ more$/.test(l)
  );
  const picked = lines.filter((l) => MEANINGFUL.test(l) && !/ (WARN|INFO) /.test(l));
  const chosen = (picked.length ? picked : lines).map((l) => l.replace(LOG_PREFIX, ""));
  // The deepest cause of a stack trace says why; the last error lines say what failed.
  const cause = chosen.filter((l) => l.startsWith("Caused by:")).at(-1);
  const unique = chosen.filter((l, i) => chosen.indexOf(l) === i && l !== cause);
  const last = unique.slice(-max);
  // A failed task interrupts the others, whose errors (InterruptedException,
  // "Aborting task") come last: the classed error must not drop out behind them.
  const classed = unique.findLast((l) => ERROR_CLASS.test(l));
  const first = classed && !last.includes(classed) ? [classed] : [];
  return [...first, ...last, ...(cause ? [cause] : [])].join(" | ").slice(0, 2000);
}

/**
 * The driver's logging: Spark's own console layout and level (WARN), plus the
 * INFO lines in which a standalone driver reports executors granted and lost
 * (executors.ts). Passed as a system property of the driver's JVM, so the
 * user's `spark.driver.extraJavaOptions` stay theirs.
 */
const DRIVER_LOG4J = `rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex
logger.executors.name = ${EXECUTOR_LOGGER}
logger.executors.level = info
`;

/** Keeps the last `max` lines of a stream (Spark can print a lot), each line shown to `onLine`. */
async function tail(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void = () => {},
  max = 300,
): Promise<string> {
  const lines: string[] = [];
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    for (const line of parts) onLine(line);
    lines.push(...parts);
    if (lines.length > max) lines.splice(0, lines.length - max);
  }
  if (rest) lines.push(rest);
  return lines.join("\n");
}

/**
 * The time of the script's last `statements` statements (those that compute
 * and write the hour, render.ts COMPUTE_STATEMENTS) from spark-sql's `Time
 * taken: 12.3 seconds` lines; the rest of a run is Spark's start-up (JVM,
 * session, executors) and the inputs' declarations.
 */
export function queryMs(stdout: string, statements = COMPUTE_STATEMENTS): number | undefined {
  // Not anchored: a console progress bar (`\r[Stage 3:>  ]`) may precede it on its line.
  const times = [...stdout.matchAll(/Time taken: ([\d.]+) seconds/g)].slice(-statements);
  if (times.length === 0) return undefined;
  return Math.round(times.reduce((ms, t) => ms + Number(t[1]) * 1000, 0));
}

/** A runner that starts `spark-sql` for each script. */
export function sparkSqlRunner(options: SparkSqlOptions): SparkRunner {
  return async (job) => {
    const bin = `${options.home}/bin/spark-sql`;
    const dir = await Deno.makeTempDir({ prefix: "antenna-spark-" });
    // Every return below is a finished run (a failure throws).
    try {
      await Deno.writeTextFile(`${dir}/hour.sql`, job.script);
      await Deno.writeTextFile(`${dir}/log4j2.properties`, DRIVER_LOG4J);
      const args = ["--master", options.master, "--name", `antenna-lambda ${job.runKey}`];
      for (const [k, v] of Object.entries(sparkConf(options, job))) {
        args.push("--conf", `${k}=${v}`);
      }
      for (const [k, v] of Object.entries(job.variables)) args.push("-d", `${k}=${v}`);
      args.push("-f", `${dir}/hour.sql`);
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(bin, {
          args,
          cwd: dir,
          env: {
            SPARK_HOME: options.home,
            // The driver runs in spark-submit's JVM (client mode), which takes these options.
            SPARK_SUBMIT_OPTS: [
              Deno.env.get("SPARK_SUBMIT_OPTS"),
              `-Dlog4j2.configurationFile=file:${dir}/log4j2.properties`,
            ].filter(Boolean).join(" "),
            ...(loopbackMaster(options.master) ? { SPARK_LOCAL_IP: "127.0.0.1" } : {}),
          },
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
      } catch (err) {
        if (err instanceof Deno.errors.NotFound) {
          throw new SparkRunError(
            `spark-sql not found at ${bin}: set batch.spark.home or SPARK_HOME, or run \`deno task stack up spark\``,
          );
        }
        throw err;
      }
      const kill = () => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      };
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        kill();
      }, options.timeoutMs);
      const executors = new ExecutorWatch(options.maxExecutorFailures);
      let lost: string | undefined;
      const watch = (line: string) => {
        if (lost) return;
        lost = executors.line(line);
        if (lost) kill();
      };
      try {
        const [status, out, err] = await Promise.all([
          child.status,
          tail(child.stdout),
          tail(child.stderr, watch),
        ]);
        if (lost) throw new SparkRunError(lost);
        if (timedOut) {
          throw new SparkRunError(
            `Spark did not finish the hour within ${
              Math.round(options.timeoutMs / 1000)
            }s (batch.spark.timeout): killed; ${lastWords(err + "\n" + out)}`,
          );
        }
        if (status.code !== 0) {
          throw new SparkRunError(
            `spark-sql failed (exit ${status.code}): ${lastWords(err + "\n" + out)}`,
          );
        }
        // The CLI prints its timings with its other messages, on stderr.
        return { queryMs: queryMs(err) ?? queryMs(out) };
      } finally {
        clearTimeout(timer);
      }
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  };
}
