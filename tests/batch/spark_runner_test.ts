/**
 * The Spark engine's pure parts, without Spark: how `batch.engine` and
 * `batch.spark` are validated and compiled, which settings a run gets, and
 * which of Spark's output lines a failed run reports.
 */
import assert from "node:assert/strict";
import { ConfigError, planFromYaml } from "../../src/config/mod.ts";
import { lastWords, loopbackMaster, queryMs, sparkConf } from "../../src/batch/spark/runner.ts";
import { engineFor } from "../../src/batch/spark/mod.ts";
import { ExecutorWatch } from "../../src/batch/spark/executors.ts";

const problems = (yaml: string): string[] => {
  try {
    planFromYaml(yaml, { env: {} });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.message.split("\n").slice(1).map((l) => l.replace(/^<defaults>:\d+:\d+: /, ""));
  }
};

Deno.test("batch.engine defaults to process; spark compiles its settings", () => {
  const byDefault = planFromYaml("", { env: {} });
  assert.equal(byDefault.batch.engine, "process");
  assert.equal(engineFor(byDefault), undefined);
  const plan = planFromYaml(
    `batch:
  engine: spark
  spark:
    master: spark://127.0.0.1:7077
    conf: [spark.executor.memory=2g, "spark.driver.extraJavaOptions=-Da=b -Dc=d"]
    timeout: 2m
`,
    { env: {} },
  );
  assert.equal(plan.batch.engine, "spark");
  assert.deepEqual(plan.batch.spark, {
    master: "spark://127.0.0.1:7077",
    home: undefined,
    conf: { "spark.executor.memory": "2g", "spark.driver.extraJavaOptions": "-Da=b -Dc=d" },
    timeoutMs: 120_000,
    maxExecutorFailures: 10,
    dataproc: undefined,
  });
  assert.equal(engineFor(plan)?.name, "spark");
});

Deno.test("batch.spark is validated with precise errors", () => {
  assert.deepEqual(problems("batch:\n  engine: flink\n"), [
    'batch.engine: unknown value "flink" (expected one of: process, spark)',
  ]);
  const master = problems("batch:\n  spark: { master: 'http://x' }\n");
  assert.equal(master.length, 1);
  assert.match(master[0], /^batch\.spark\.master: .*local, local\[N\], spark:\/\/host:port/);
  assert.deepEqual(problems("batch:\n  spark: { max_executor_failures: 0 }\n"), [
    "batch.spark.max_executor_failures: must be at least 1, got 0",
  ]);
  const conf = problems("batch:\n  spark: { conf: [executor.memory=2g] }\n");
  assert.equal(conf.length, 1);
  assert.match(conf[0], /^batch\.spark\.conf\[0\]: .*spark\.<key>=<value>/);
  assert.deepEqual(problems("batch:\n  spark: { dataproc: { project: p } }\n"), [
    "batch.spark.dataproc.region: region is required with dataproc.project",
    'batch.spark.dataproc.project: Dataproc reads the lake from Cloud Storage, but lake.uri is "file://./data/lake": put the lake on gs://',
  ]);
  assert.deepEqual(problems("batch:\n  spark: { dataproc: { region: europe-west1 } }\n"), [
    "batch.spark.dataproc.region: region is set but dataproc.project is not: set project to run hours on Dataproc, or remove region",
  ]);
  assert.deepEqual(
    problems(
      "lake: { uri: gs://bucket/p }\nbatch:\n  spark: { dataproc: { project: p, region: europe-west1 } }\n",
    ),
    [],
  );
});

Deno.test("sparkConf() keeps a loopback master's driver on 127.0.0.1 and sets up gs:// for an emulator", () => {
  const base = { home: "/s", conf: {}, timeoutMs: 1000, maxExecutorFailures: 10 };
  const local = sparkConf({ ...base, master: "local[2]" }, { gcs: false });
  assert.equal(local["spark.driver.host"], "127.0.0.1");
  assert.equal(local["spark.sql.session.timeZone"], "UTC");
  assert.equal(local["spark.ui.enabled"], "false");
  assert.equal(local["spark.hadoop.fs.gs.impl"], undefined);
  const remote = sparkConf({ ...base, master: "yarn" }, { gcs: false });
  assert.equal(remote["spark.driver.host"], undefined);
  const gcs = sparkConf({
    ...base,
    master: "spark://127.0.0.1:7077",
    conf: { "spark.ui.enabled": "true" },
    gcs: { jar: "/j.jar", endpoint: "http://127.0.0.1:14443", projectId: "t" },
  }, { gcs: true });
  assert.equal(gcs["spark.jars"], "/j.jar");
  assert.equal(gcs["spark.hadoop.fs.gs.storage.root.url"], "http://127.0.0.1:14443/");
  assert.equal(gcs["spark.hadoop.fs.gs.auth.type"], "UNAUTHENTICATED");
  assert.equal(gcs["spark.hadoop.fs.gs.operation.move.enable"], "false");
  // The user's conf wins over the engine's.
  assert.equal(gcs["spark.ui.enabled"], "true");
  assert.ok(loopbackMaster("local") && loopbackMaster("spark://localhost:7077"));
  assert.ok(!loopbackMaster("spark://10.0.0.5:7077"));
});

Deno.test("lastWords() reports Spark's error and its deepest cause, not stack frames or warnings", () => {
  const stderr = `Setting default log level to "WARN".
26/12/07 02:35:17 WARN NativeCodeLoader: Unable to load native-hadoop library
26/12/07 02:55:10 ERROR Executor: Exception in task 1.0 in stage 46.0 (TID 26)
org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows to gs://b/out. SQLSTATE: 58030
\tat org.apache.spark.sql.errors.QueryExecutionErrors$.taskFailedWhileWritingRowsError(QueryExecutionErrors.scala:774)
Caused by: java.io.IOException: Error moving 'gs://b/out/_temporary/x' to 'gs://b/out/y'
\tat com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem.rename(GoogleHadoopFileSystem.java:1)
Caused by: com.google.api.client.googleapis.json.GoogleJsonResponseException: 400 Bad Request
\t... 12 more
`;
  assert.equal(
    lastWords(stderr),
    "Exception in task 1.0 in stage 46.0 (TID 26) | org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows to gs://b/out. SQLSTATE: 58030 | Caused by: java.io.IOException: Error moving 'gs://b/out/_temporary/x' to 'gs://b/out/y' | Caused by: com.google.api.client.googleapis.json.GoogleJsonResponseException: 400 Bad Request",
  );
  assert.equal(lastWords("just\nsome\noutput\n"), "just | some | output");
});

Deno.test("lastWords() keeps Spark's classed error when the interrupted tasks' errors come after it", () => {
  const stderr = `26/12/07 04:01:10 ERROR Executor: Exception in task 0.0 in stage 1.0 (TID 1)
org.apache.spark.SparkException: [FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER] Encountered error while reading file file:///l/x.parquet. SQLSTATE: KD001
\tat org.apache.spark.sql.errors.QueryExecutionErrors$.cannotReadFilesError(QueryExecutionErrors.scala:1)
26/12/07 04:01:11 ERROR TaskContextImpl: Error in TaskCompletionListener
26/12/07 04:01:11 ERROR Utils: Aborting task
26/12/07 04:01:11 ERROR Executor: Failed to check existence of class GeneratedClass on REPL class server
Caused by: java.lang.InterruptedException: AbstractBootstrap$PendingRegistrationPromise@7aa97862(incomplete)
`;
  assert.equal(
    lastWords(stderr),
    "org.apache.spark.SparkException: [FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER] Encountered error while reading file file:///l/x.parquet. SQLSTATE: KD001 | Error in TaskCompletionListener | Aborting task | Failed to check existence of class GeneratedClass on REPL class server | Caused by: java.lang.InterruptedException: AbstractBootstrap$PendingRegistrationPromise@7aa97862(incomplete)",
  );
});

// A standalone driver's lines (Spark 4.1, executors started with an impossible -Xss1k).
const DRIVER = (n: number, reason: string) =>
  `26/12/07 12:51:07 INFO StandaloneSchedulerBackend: Executor app-20261207125107-0001/${n} removed: ${reason}`;

Deno.test("ExecutorWatch fails a run once max_executor_failures executors died, naming the last reason and the application", () => {
  const watch = new ExecutorWatch(3);
  const lines = [
    "26/12/07 12:51:07 INFO StandaloneSchedulerBackend: Connected to Spark cluster with app ID app-20261207125107-0001",
    "26/12/07 12:51:07 INFO StandaloneSchedulerBackend: Granted executor ID app-20261207125107-0001/0 on hostPort 127.0.0.1:18081 with 1 core(s), 512.0 MiB RAM",
    DRIVER(1, "Command exited with code 1"),
    // Given back by the driver (dynamic allocation), not a failure.
    DRIVER(2, "Executor killed by driver."),
    "26/12/07 12:51:08 WARN TaskSchedulerImpl: Lost executor 0 on 127.0.0.1: worker lost",
    DRIVER(0, "worker lost"),
  ];
  assert.deepEqual(lines.map((l) => watch.line(l)), lines.map(() => undefined));
  assert.equal(watch.failures, 2);
  assert.equal(
    watch.line(DRIVER(3, "Command exited with code 137")),
    "the cluster's executors keep failing: 3 lost (batch.spark.max_executor_failures), the last: Command exited with code 137; each one's stderr is on its worker, in work/app-20261207125107-0001/<executor id>/",
  );
  // One lost executor is Spark's to replace: the run goes on.
  assert.equal(new ExecutorWatch(10).line(DRIVER(0, "Command exited with code 137")), undefined);
});

Deno.test("queryMs() is the time spark-sql reports for the script's last statements", () => {
  const stdout = `spark.sql.session.timeZone\tUTC
Time taken: 8.236 seconds, Fetched 1 row(s)
Time taken: 0.305 seconds
\r[Stage 3:>                (0 + 2) / 8]\rTime taken: 30.841 seconds
`;
  assert.equal(queryMs(stdout, 1), 30_841);
  // The hour's statements (cache, emails view, write), not the session's first SET.
  assert.equal(queryMs(stdout + "Time taken: 1.5 seconds\nTime taken: 0.25 seconds\n"), 32_591);
  assert.equal(queryMs("no timing here"), undefined);
});
