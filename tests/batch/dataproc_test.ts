/**
 * The Dataproc Serverless client against the local stand-in of the batches
 * API (Google cannot be reached from here): the exact requests, polling to
 * an end state, failures surfaced, transient answers retried, and a
 * re-submission of the same run that follows the batch already running.
 */
import assert from "node:assert/strict";
import {
  dataprocIds,
  type DataprocTarget,
  runDataprocSqlBatch,
} from "../../src/batch/spark/dataproc.ts";
import { SparkRunError } from "../../src/batch/spark/errors.ts";
import { type DataprocStandin, startDataprocStandin } from "../_support/dataproc_standin.ts";
import { freshDatabase, gcsEndpoint, uniqueName } from "../_support/services.ts";
import { generateHour, writeLakeHour } from "../_support/batch.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { createBatchRunner } from "../../src/batch/mod.ts";
import { planFromYaml } from "../../src/config/mod.ts";
import { createLogger } from "../../src/log.ts";
import { createApp } from "../../src/api/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { summaryLine } from "../../src/cli/batch.ts";

const H = Date.UTC(2026, 10, 28, 10);

const target = (s: DataprocStandin): DataprocTarget => ({
  project: "antenna-test",
  region: "europe-west1",
  serviceAccount: "batch@antenna-test.iam.gserviceaccount.com",
  subnetwork: "projects/antenna-test/regions/europe-west1/subnetworks/default",
  staging: "gs://antenna-staging/runs",
  endpoint: s.endpoint,
});

const job = (runKey: string) => ({
  runKey,
  queryFileUri: `gs://antenna-staging/runs/${runKey}/hour.sql`,
  variables: { lake: "gs://antenna-lake/events", out: `gs://antenna-staging/runs/${runKey}/out` },
  jarFileUris: ["gs://antenna-staging/jars/extra.jar"],
});

const token = () => Promise.resolve("tok-1");

async function withStandin(
  options: Parameters<typeof startDataprocStandin>[0],
  fn: (s: DataprocStandin) => Promise<void>,
): Promise<void> {
  const s = startDataprocStandin(options);
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

Deno.test("dataprocIds() are valid for the API and the same for the same run key", () => {
  const keys = [
    "2026-11-28T10:00Z run 42",
    "2026-11-28T10:00Z run 43",
    "x",
    "",
    "ÜBER/..//run",
    "a".repeat(200),
    "2026-11-28T10:00Z RUN 42", // differs from the first only in case
  ];
  const seen = new Set<string>();
  for (const k of keys) {
    const { batchId, requestId } = dataprocIds(k);
    assert.match(batchId, /^[a-z0-9-]{4,63}$/, k);
    assert.match(batchId, /^[a-z]/, k);
    assert.match(requestId, /^[a-zA-Z0-9_-]{1,40}$/, k);
    assert.deepEqual(dataprocIds(k), { batchId, requestId }, "deterministic");
    assert.ok(!seen.has(batchId), `unique: ${k}`);
    seen.add(batchId);
  }
  assert.match(
    dataprocIds("2026-11-28T10 run 42").batchId,
    /^antenna-2026-11-28t10-run-42-[0-9a-f]{12}$/,
  );
});

Deno.test("runDataprocSqlBatch() sends the published create request and polls the batch to SUCCEEDED", async () => {
  await withStandin({ pendingPolls: 1, runningPolls: 2 }, async (s) => {
    const submitted: string[] = [];
    const out = await runDataprocSqlBatch(target(s), job("h10-run-7"), {
      token,
      pollMs: 10,
      onSubmitted: (u) => {
        submitted.push(u);
      },
    });
    const { batchId, requestId } = dataprocIds("h10-run-7");
    const parent = "/v1/projects/antenna-test/locations/europe-west1/batches";
    assert.deepEqual(s.requests.map((r) => [r.method, r.path]), [
      ["POST", parent],
      ["GET", `${parent}/${batchId}`], // PENDING
      ["GET", `${parent}/${batchId}`], // RUNNING
      ["GET", `${parent}/${batchId}`], // RUNNING
      ["GET", `${parent}/${batchId}`], // SUCCEEDED
    ]);
    const create = s.requests[0];
    assert.deepEqual(create.query, { batchId, requestId });
    assert.equal(create.authorization, "Bearer tok-1");
    assert.equal(create.contentType, "application/json");
    assert.deepEqual(create.body, {
      sparkSqlBatch: {
        queryFileUri: "gs://antenna-staging/runs/h10-run-7/hour.sql",
        queryVariables: {
          lake: "gs://antenna-lake/events",
          out: "gs://antenna-staging/runs/h10-run-7/out",
        },
        jarFileUris: ["gs://antenna-staging/jars/extra.jar"],
      },
      runtimeConfig: { version: "3.0" },
      environmentConfig: {
        executionConfig: {
          stagingBucket: "antenna-staging",
          serviceAccount: "batch@antenna-test.iam.gserviceaccount.com",
          subnetworkUri: "projects/antenna-test/regions/europe-west1/subnetworks/default",
        },
      },
    });
    assert.ok(s.requests.every((r) => r.authorization === "Bearer tok-1"));
    const consoleUrl =
      `https://console.cloud.google.com/dataproc/batches/europe-west1/${batchId}/summary?project=antenna-test`;
    assert.deepEqual(out, {
      batchName: `projects/antenna-test/locations/europe-west1/batches/${batchId}`,
      consoleUrl,
    });
    assert.deepEqual(submitted, [consoleUrl]);
  });
});

Deno.test("runDataprocSqlBatch() fails with the batch's stateMessage when it ends FAILED or CANCELLED", async () => {
  for (const outcome of ["FAILED", "CANCELLED"] as const) {
    await withStandin(
      { outcome, stateMessage: "Job failed with message [AnalysisException: no such column]" },
      async (s) => {
        await assert.rejects(
          runDataprocSqlBatch(target(s), job(`fail-${outcome}`), { token, pollMs: 5 }),
          (err: unknown) => {
            assert.ok(err instanceof SparkRunError);
            assert.match(
              err.message,
              new RegExp(`${outcome}: Job failed with message \\[AnalysisException`),
            );
            assert.match(err.message, /console\.cloud\.google\.com\/dataproc\/batches/);
            return true;
          },
        );
      },
    );
  }
});

Deno.test("runDataprocSqlBatch() gives up with SparkRunError when the batch does not end in time, and cancels it", async () => {
  await withStandin({ outcome: "NEVER" }, async (s) => {
    await assert.rejects(
      runDataprocSqlBatch(target(s), job("slow"), { token, pollMs: 10, timeoutMs: 300 }),
      SparkRunError,
      "no end state within 300 ms",
    );
    assert.equal(s.batches.size, 1);
    // Not left holding a cluster: cancelled through its operation.
    const b = s.batches.get(dataprocIds("slow").batchId)!;
    const cancel = s.requests.at(-1)!;
    assert.equal(cancel.method, "POST");
    assert.equal(cancel.path, `/v1/${b.operation.name}:cancel`);
    assert.equal(cancel.authorization, "Bearer tok-1");
    assert.equal(b.resource.state, "CANCELLED");
  });
});

Deno.test("runDataprocSqlBatch() retries 503 answers and creates one batch", async () => {
  await withStandin({}, async (s) => {
    s.failNext(503, 2);
    await runDataprocSqlBatch(target(s), job("flaky"), { token, pollMs: 5 });
    const posts = s.requests.filter((r) => r.method === "POST");
    assert.equal(posts.length, 3, "two 503s, then the create");
    assert.equal(new Set(posts.map((p) => JSON.stringify(p.query))).size, 1, "same ids each time");
    assert.equal(s.batches.size, 1);
  });
});

Deno.test("runDataprocSqlBatch() after a crash follows the batch already running instead of starting another", async (t) => {
  await t.step("same requestId: the first batch's operation", async () => {
    await withStandin({ runningPolls: 3 }, async (s) => {
      // The process dies once the batch is submitted and running.
      const crash = new AbortController();
      await assert.rejects(
        runDataprocSqlBatch(target(s), job("hour-11"), {
          token,
          pollMs: 5,
          signal: crash.signal,
          onSubmitted: () => crash.abort(new Error("process killed")),
        }),
        SparkRunError,
      );
      assert.equal(s.batches.size, 1);
      assert.ok(!s.requests.some((r) => r.path.endsWith(":cancel")), "a stop does not cancel");
      const out = await runDataprocSqlBatch(target(s), job("hour-11"), { token, pollMs: 5 });
      assert.equal(s.batches.size, 1, "no second batch");
      assert.equal(s.requests.filter((r) => r.method === "POST").length, 2);
      assert.match(out.batchName, new RegExp(`/batches/${dataprocIds("hour-11").batchId}$`));
    });
  });
  await t.step("batchId taken (ALREADY_EXISTS): the existing batch is followed", async () => {
    await withStandin({}, async (s) => {
      const { batchId } = dataprocIds("hour-12");
      // Submitted earlier under another requestId (e.g. the API forgot the first one).
      const first = await fetch(
        `${s.endpoint}/v1/projects/antenna-test/locations/europe-west1/batches?batchId=${batchId}&requestId=older`,
        { method: "POST", headers: { authorization: "Bearer x" }, body: "{}" },
      );
      assert.equal(first.status, 200);
      await first.body?.cancel();
      const out = await runDataprocSqlBatch(target(s), job("hour-12"), { token, pollMs: 5 });
      assert.equal(s.batches.size, 1);
      assert.match(out.batchName, new RegExp(`/batches/${batchId}$`));
    });
  });
});

Deno.test("runDataprocSqlBatch() surfaces a refused request (401) without retrying it", async () => {
  await withStandin({}, async (s) => {
    await assert.rejects(
      runDataprocSqlBatch(target(s), job("denied"), {
        token: () => Promise.resolve(""),
        pollMs: 5,
      }),
      SparkRunError,
      "Dataproc create refused: 401 UNAUTHENTICATED",
    );
    assert.equal(s.requests.length, 1);
    assert.equal(s.batches.size, 0);
  });
});

/** A pipeline whose hours run as Dataproc batches on the stand-in, the lake on the GCS emulator. */
function dataprocPlan(s: DataprocStandin, lakeUri: string) {
  return planFromYaml(
    `lake:
  uri: ${lakeUri}
  gcs_endpoint: ${gcsEndpoint()}
  gcs_project_id: test
speed:
  enabled: false
batch:
  engine: spark
  spark:
    dataproc:
      project: antenna-test
      region: europe-west1
      endpoint: ${s.endpoint}
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id }
`,
    { env: {} },
  );
}

for (
  const [outcome, error] of [
    ["FAILED", /Dataproc batch antenna-run-\d+-[0-9a-f]{12} FAILED: Executors lost/],
    // The stand-in runs nothing: a batch that "succeeds" leaves no results to read.
    ["SUCCEEDED", /has no run statistics/],
  ] as const
) {
  Deno.test(`a Dataproc run that ends ${outcome} records its console link in batch_runs and the API shows it`, async () => {
    const fresh = await freshDatabase("dataproc_link");
    const db = await openDb({ url: fresh.url, maxConnections: 2 });
    const s = startDataprocStandin({
      outcome,
      stateMessage: "Executors lost",
      pendingPolls: 0,
      runningPolls: 0,
    });
    try {
      await migrate(db);
      const plan = dataprocPlan(s, `gs://${uniqueName("dplink").replaceAll("_", "-")}/lake`);
      const store = openStore(plan.lake);
      const devices = ["dev-a", "dev-b"];
      const files = await writeLakeHour(
        store,
        H,
        generateHour({ hour: H, events: 40, devices, antennas: 2, apps: ["SKYPE"] }),
      );
      const batch = createBatchRunner({
        plan,
        db,
        store,
        log: createLogger({ test: "dataproc" }),
        engineOptions: { dataprocToken: () => Promise.resolve("injected-token") },
      });
      const run = await batch.runHour(H, "manual");
      assert.equal(run.status, "failed");
      assert.match(run.error ?? "", error);

      const { batchId } = dataprocIds(`run-${run.runId}`);
      const link =
        `https://console.cloud.google.com/dataproc/batches/europe-west1/${batchId}/summary?project=antenna-test`;
      assert.equal((await batch.getRun(run.runId))?.consoleUrl, link);
      assert.equal(run.consoleUrl, link);
      // The files were listed before the batch ran; its rows were never counted.
      assert.deepEqual([run.filesRead, run.rowsRead], [files.length, 0]);
      const record = await batch.getRun(run.runId);
      assert.deepEqual([record?.filesRead, record?.rowsRead], [files.length, undefined]);
      assert.ok(summaryLine(run).endsWith(` console=${link}`), summaryLine(run));
      assert.ok(
        s.requests.length >= 2 &&
          s.requests.every((r) => r.authorization === "Bearer injected-token"),
      );
      const app = createApp({
        plan,
        db,
        store,
        batch,
        registry: new Registry(),
        clock: () => H + 3 * 3_600_000,
        log: createLogger({ test: "dataproc" }),
      });
      const res = await app.request(`/api/v1/batch/runs/${run.runId}`);
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.equal(body.consoleUrl, link);
      assert.equal(body.status, "failed");
      // Nothing of the failed run reached PostgreSQL, and its files are gone.
      assert.deepEqual(await db.query("SELECT 1 FROM bytes_hourly"), []);
      assert.deepEqual((await store.list("spark-runs/")).map((e) => e.key), []);
      await batch.idle();
    } finally {
      await s.close();
      await db.close();
      await fresh.drop();
    }
  });
}

// A Dataproc batch whose script runs (on local Spark behind the stand-in) and whose results are
// held to the whole golden result: tests/batch/spark_golden_test.ts, the gs:// case.
