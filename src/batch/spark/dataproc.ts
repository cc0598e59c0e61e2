/**
 * The hour's Spark SQL script as a Dataproc Serverless batch, through
 * Google's batches API (v1): `projects.locations.batches.create` with a
 * `batchId` and a `requestId` derived from the run, then `batches.get` until
 * the batch ends. Both ids are the same for a re-submission of the same run
 * (after a crash of this process): the API answers a repeated `requestId`
 * with the first batch's operation, and a repeated `batchId` with 409
 * ALREADY_EXISTS, which here means "that batch is ours: follow it". So a
 * run is never started twice on the cluster.
 *
 * Transient answers (5xx, 429, a failed connection) are retried with the
 * shared backoff until the run's timeout; the batch's end state is polled
 * with the same helper. Google cannot be reached from the test machine:
 * tests/_support/dataproc_standin.ts follows the published API locally.
 */
import { createHash } from "node:crypto";
import { retry } from "../../async/retry.ts";
import { SparkRunError } from "./errors.ts";

/** Where and as whom batches run. */
export interface DataprocTarget {
  readonly project: string;
  /** A Dataproc region, e.g. `europe-west1`. */
  readonly region: string;
  /** Service account the workload runs as. Default: the project's default Compute Engine one. */
  readonly serviceAccount?: string;
  /** Subnetwork URI or name. Default: the region's `default` subnetwork. */
  readonly subnetwork?: string;
  /** `gs://bucket/prefix`: the bucket stages the workload's dependencies. */
  readonly staging: string;
  /** API root. Default https://dataproc.googleapis.com (a stand-in in tests). */
  readonly endpoint: string;
}

/** The job: the script on gs://, its `${variables}`, extra jars (e.g. connectors). */
export interface DataprocJob {
  /** Identifies the run; the same key gives the same batch. */
  readonly runKey: string;
  readonly queryFileUri: string;
  readonly variables: Record<string, string>;
  readonly jarFileUris?: string[];
}

export interface DataprocDeps {
  /** An OAuth access token with the cloud-platform scope (see {@linkcode googleToken}). */
  readonly token: () => Promise<string>;
  /** Default: the global fetch. */
  readonly fetch?: typeof fetch;
  /** Wait between two looks at the batch's state, ms. Default 10,000. */
  readonly pollMs?: number;
  /** The whole run, submission included, ms. Default 3,600,000. */
  readonly timeoutMs?: number;
  /** Stops waiting (the batch itself keeps running). Default: none. */
  readonly signal?: AbortSignal;
  /** Called once the batch exists, with its console link (for batch_runs); awaited. */
  readonly onSubmitted?: (consoleUrl: string) => void | Promise<void>;
}

/** The Dataproc Serverless runtime: 3.0 is Spark 4.0 with the GCS connector built in. */
export const DATAPROC_RUNTIME_VERSION = "3.0";
export const DATAPROC_ENDPOINT = "https://dataproc.googleapis.com";
export const CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform";

/** A batch's states (Batch.State); the last three are final. */
export type BatchState =
  | "STATE_UNSPECIFIED"
  | "PENDING"
  | "RUNNING"
  | "CANCELLING"
  | "SUCCEEDED"
  | "FAILED"
  | "CANCELLED";

/**
 * The batch and request ids of a run: deterministic, so a re-submission of
 * the same run finds its batch. `batchId` is 4-63 characters of [a-z0-9-]
 * (a readable part of the key, then a hash of all of it, so keys that read
 * alike stay apart); `requestId` at most 40 of [a-zA-Z0-9_-].
 *
 * @example
 * dataprocIds("2026-11-28T10 run 42").batchId // "antenna-2026-11-28t10-run-42-" + 12 hex digits
 */
export function dataprocIds(runKey: string): { batchId: string; requestId: string } {
  const hash = createHash("sha256").update(runKey).digest("hex");
  const slug = runKey.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "");
  const readable = slug.slice(0, 63 - "antenna-".length - 1 - 12).replace(/-+$/, "");
  const batchId = `antenna-${readable ? `${readable}-` : ""}${hash.slice(0, 12)}`;
  return { batchId, requestId: `antenna-${hash.slice(0, 32)}` };
}

/** The Cloud console page of a batch. */
export function dataprocConsoleUrl(target: DataprocTarget, batchId: string): string {
  return `https://console.cloud.google.com/dataproc/batches/${encodeURIComponent(target.region)}/${
    encodeURIComponent(batchId)
  }/summary?project=${encodeURIComponent(target.project)}`;
}

/** The `Batch` resource the create request carries (a SparkSqlBatch). */
export function batchBody(target: DataprocTarget, job: DataprocJob): Record<string, unknown> {
  const bucket = /^gs:\/\/([^/]+)/.exec(target.staging)?.[1];
  if (!bucket) {
    throw new SparkRunError(
      `Dataproc staging ${JSON.stringify(target.staging)} is not a gs://bucket/prefix URI`,
    );
  }
  const execution: Record<string, string> = { stagingBucket: bucket }; // a bucket name, not a URI
  if (target.serviceAccount) execution.serviceAccount = target.serviceAccount;
  if (target.subnetwork) execution.subnetworkUri = target.subnetwork;
  return {
    sparkSqlBatch: {
      queryFileUri: job.queryFileUri,
      queryVariables: job.variables,
      ...(job.jarFileUris?.length ? { jarFileUris: job.jarFileUris } : {}),
    },
    runtimeConfig: { version: DATAPROC_RUNTIME_VERSION },
    environmentConfig: { executionConfig: execution },
  };
}

/**
 * Submits the run's batch (or finds it, when it was submitted before) and
 * waits until it ends; resolves when it SUCCEEDED, throws `SparkRunError`
 * when it FAILED or was CANCELLED (with the batch's `stateMessage`), on a
 * refused request, and when `timeoutMs` passes first (then the batch is
 * cancelled, best effort).
 */
export async function runDataprocSqlBatch(
  target: DataprocTarget,
  job: DataprocJob,
  deps: DataprocDeps,
): Promise<{ batchName: string; consoleUrl: string }> {
  const { batchId, requestId } = dataprocIds(job.runKey);
  const timeoutMs = deps.timeoutMs ?? 3_600_000;
  const timeout = new AbortController();
  const timer = setTimeout(
    () =>
      timeout.abort(
        new SparkRunError(`Dataproc batch ${batchId}: no end state within ${timeoutMs} ms`),
      ),
    timeoutMs,
  );
  const signal = deps.signal ? AbortSignal.any([deps.signal, timeout.signal]) : timeout.signal;
  const api = new DataprocApi(target, deps, signal);
  const parent = `projects/${target.project}/locations/${target.region}`;
  const consoleUrl = dataprocConsoleUrl(target, batchId);
  try {
    const created = await api.call(
      "POST",
      `${parent}/batches?batchId=${batchId}&requestId=${requestId}`,
      batchBody(target, job),
    );
    // 409: a batch with this id exists, i.e. this run's, submitted before a crash.
    if (created.status !== 200 && created.status !== 409) throw refused("create", created);
    await deps.onSubmitted?.(consoleUrl);
    const batch = await retry(async () => {
      const got = await api.call("GET", `${parent}/batches/${batchId}`);
      if (got.status !== 200) return { refused: got };
      const state = got.body.state as BatchState | undefined;
      if (state === "SUCCEEDED" || state === "FAILED" || state === "CANCELLED") return got.body;
      throw new NotYet();
    }, { initialMs: deps.pollMs ?? 10_000, multiplier: 1, maxMs: deps.pollMs ?? 10_000, signal });
    if ("refused" in batch) throw refused("get", batch.refused as Answer);
    if (batch.state !== "SUCCEEDED") {
      throw new SparkRunError(
        `Dataproc batch ${batchId} ${batch.state}: ${
          batch.stateMessage ?? "no state message"
        } (${consoleUrl})`,
      );
    }
    return { batchName: String(batch.name ?? `${parent}/batches/${batchId}`), consoleUrl };
  } catch (err) {
    if (timeout.signal.aborted && err === timeout.signal.reason) {
      // Left running, the batch would hold its cluster while the scheduler's
      // retry starts another; a caller's abort (a stop) leaves it to resume.
      await api.cancel(`${parent}/batches/${batchId}`);
      throw err;
    }
    if (err instanceof SparkRunError) throw err;
    throw new SparkRunError(`Dataproc batch ${batchId}: ${(err as Error)?.message ?? err}`, {
      cause: err,
    });
  } finally {
    clearTimeout(timer);
  }
}

/** The batch is not in an end state yet: look again after `pollMs`. */
class NotYet extends Error {}

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown> & {
    error?: { code?: number; message?: string; status?: string };
  };
}

/** A 5xx, a 429 or a failed connection: worth another try. */
class Transient extends Error {}

function refused(what: string, a: Answer): SparkRunError {
  const e = a.body.error;
  return new SparkRunError(
    `Dataproc ${what} refused: ${a.status} ${e?.status ?? ""} ${e?.message ?? ""}`.trim(),
  );
}

/** How long a best-effort cancellation may take, ms. */
const CANCEL_MS = 10_000;

/** Authorised JSON calls to the API, transient failures retried until the signal aborts. */
class DataprocApi {
  constructor(
    readonly target: DataprocTarget,
    readonly deps: DataprocDeps,
    readonly signal: AbortSignal,
  ) {}

  call(method: "GET" | "POST", path: string, body?: unknown): Promise<Answer> {
    const f = this.deps.fetch ?? fetch;
    const url = `${this.target.endpoint.replace(/\/+$/, "")}/v1/${path}`;
    return retry(async () => {
      let res: Response;
      try {
        res = await f(url, {
          method,
          headers: {
            authorization: `Bearer ${await this.deps.token()}`,
            ...(body === undefined ? {} : { "content-type": "application/json" }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: this.signal,
        });
      } catch (err) {
        if (this.signal.aborted) throw this.signal.reason;
        throw new Transient(`${method} ${url}: ${(err as Error)?.message ?? err}`);
      }
      const text = await res.text();
      if (res.status >= 500 || res.status === 429) {
        throw new Transient(`${method} ${url}: ${res.status} ${text.slice(0, 200)}`);
      }
      let parsed: Answer["body"] = {};
      try {
        parsed = text ? JSON.parse(text) : {};
      } catch {
        parsed = { error: { message: text.slice(0, 200) } };
      }
      return { status: res.status, body: parsed };
    }, { initialMs: 500, maxMs: 30_000, signal: this.signal });
  }

  /**
   * Best effort, once: cancels the batch through its long-running operation
   * (the batch's `operation`, `operations.cancel`), as `gcloud dataproc
   * batches cancel` does. Failures are ignored: the run fails either way.
   */
  async cancel(batchPath: string): Promise<void> {
    const f = this.deps.fetch ?? fetch;
    const root = `${this.target.endpoint.replace(/\/+$/, "")}/v1/`;
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), CANCEL_MS);
    try {
      const headers = { authorization: `Bearer ${await this.deps.token()}` };
      const got = await f(root + batchPath, { headers, signal: stop.signal });
      const operation = got.ok ? (await got.json()).operation : await got.body?.cancel();
      if (typeof operation !== "string") return;
      const res = await f(`${root}${operation}:cancel`, {
        method: "POST",
        headers,
        signal: stop.signal,
      });
      await res.body?.cancel();
    } catch {
      // Nothing more to do: the batch's own TTL or a person ends it.
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * An access token with the cloud-platform scope from Application Default
 * Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's login, or the VM's
 * metadata server), through google-auth-library; the client caches and
 * refreshes the token.
 */
export function googleToken(): () => Promise<string> {
  let auth: Promise<{ getAccessToken(): Promise<string | null | undefined> }> | undefined;
  return async () => {
    auth ??= import("google-auth-library").then((m) =>
      new m.GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE] })
    );
    const token = await (await auth).getAccessToken();
    if (!token) throw new SparkRunError("Google credentials gave no access token");
    return token;
  };
}
