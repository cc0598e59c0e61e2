/**
 * A local stand-in for Dataproc's batches API (v1), as published: create
 * (`POST /v1/projects/{p}/locations/{r}/batches?batchId=&requestId=`,
 * answering a long-running Operation; a repeated requestId gets the first
 * batch's operation, a repeated batchId 409 ALREADY_EXISTS), get
 * (`GET …/batches/{id}`, a Batch whose `state` moves PENDING → RUNNING → the
 * configured outcome as it is polled), `operations.cancel` on the batch's
 * operation (the batch ends CANCELLED), Google's error shape, a bearer token
 * required. It records every request, and can answer the next requests with
 * a transient status (503). It runs nothing unless given `execute` (a test
 * runs the script with a local Spark there). Listens on 127.0.0.1, a port of 18190-18199.
 */
import type { ObjectStore } from "../../src/lake/mod.ts";
import { sparkSqlRunner } from "../../src/batch/spark/runner.ts";
import type { ScriptVariables } from "../../src/batch/spark/render.ts";
import {
  GCS_CONNECTOR_JAR,
  shortDriverJavaOptions,
  stackSparkHome,
} from "../../src/stack/spark.ts";
import { gcsEndpoint } from "./services.ts";

export type Outcome = "SUCCEEDED" | "FAILED" | "CANCELLED" | "NEVER";

export interface StandinOptions {
  /** End state of every batch; NEVER stays RUNNING. Default SUCCEEDED. */
  readonly outcome?: Outcome;
  /** Batch.stateMessage once it ends (FAILED/CANCELLED). */
  readonly stateMessage?: string;
  /** Gets answered PENDING, then RUNNING, before the outcome. Default 1 and 2. */
  readonly pendingPolls?: number;
  readonly runningPolls?: number;
  /**
   * Runs the workload, as Dataproc would (e.g. the script with a local
   * spark-sql): started at create, the batch stays RUNNING until it settles,
   * then ends SUCCEEDED, or FAILED with the error's message; `outcome` is
   * then ignored. Default: nothing runs, the batch ends `outcome`.
   */
  readonly execute?: (batch: Record<string, unknown>) => Promise<void>;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly authorization: string | null;
  readonly contentType: string | null;
  readonly body: unknown;
}

interface StoredBatch {
  readonly resource: Record<string, unknown>;
  readonly operation: { readonly name: string } & Record<string, unknown>;
  gets: number;
  cancelled?: boolean;
  /** With `execute`: its end, once settled. */
  executed?: { state: "SUCCEEDED" | "FAILED"; message?: string };
}

export interface DataprocStandin {
  readonly endpoint: string;
  readonly requests: RecordedRequest[];
  /** Batches created, by id. */
  readonly batches: ReadonlyMap<string, StoredBatch>;
  /** The next `count` requests answer `status` (e.g. 503) without effect. */
  failNext(status: number, count: number): void;
  close(): Promise<void>;
}

const BATCH_ID = /^[a-z0-9-]{4,63}$/;
const REQUEST_ID = /^[a-zA-Z0-9_-]{1,40}$/;
const PATH = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/batches(?:\/([^/]+))?$/;
const CANCEL = /^\/v1\/(projects\/[^/]+\/regions\/[^/]+\/operations\/[^/:]+):cancel$/;

const googleError = (code: number, status: string, message: string) =>
  Response.json({ error: { code, message, status } }, { status: code });

/** What the stand-in holds between requests. */
interface State {
  readonly options: StandinOptions;
  readonly requests: RecordedRequest[];
  readonly batches: Map<string, StoredBatch>;
  readonly byRequestId: Map<string, string>;
  failing: { status: number; count: number };
}

export function startDataprocStandin(options: StandinOptions = {}): DataprocStandin {
  const st: State = {
    options,
    requests: [],
    batches: new Map(),
    byRequestId: new Map(),
    failing: { status: 0, count: 0 },
  };
  const server = listen((req) => handle(st, req));
  return {
    endpoint: `http://127.0.0.1:${server.addr.port}`,
    requests: st.requests,
    batches: st.batches,
    failNext(status, count) {
      st.failing = { status, count };
    },
    close: () => server.shutdown(),
  };
}

async function handle(st: State, req: Request): Promise<Response> {
  const url = new URL(req.url);
  const text = await req.text();
  st.requests.push({
    method: req.method,
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    authorization: req.headers.get("authorization"),
    contentType: req.headers.get("content-type"),
    body: text ? JSON.parse(text) : undefined,
  });
  if (st.failing.count > 0) {
    st.failing.count--;
    return googleError(st.failing.status, "UNAVAILABLE", "The service is currently unavailable.");
  }
  if (!/^Bearer \S+$/.test(req.headers.get("authorization") ?? "")) {
    return googleError(401, "UNAUTHENTICATED", "Request is missing required authentication.");
  }
  const cancel = CANCEL.exec(url.pathname);
  if (req.method === "POST" && cancel) return cancelOperation(st, cancel[1]);
  const m = PATH.exec(url.pathname);
  if (!m) return googleError(404, "NOT_FOUND", `no route ${url.pathname}`);
  const [, project, region, id] = m;
  if (req.method === "POST" && !id) {
    return create(st, project, region, url.searchParams, text ? JSON.parse(text) : {});
  }
  if (req.method === "GET" && id) return get(st, id);
  return googleError(405, "METHOD_NOT_ALLOWED", `${req.method} ${url.pathname}`);
}

function create(
  st: State,
  project: string,
  region: string,
  q: URLSearchParams,
  body: unknown,
): Response {
  const batchId = q.get("batchId") ?? crypto.randomUUID();
  const requestId = q.get("requestId");
  if (!BATCH_ID.test(batchId)) {
    return googleError(400, "INVALID_ARGUMENT", `batchId ${batchId} does not match ${BATCH_ID}`);
  }
  if (requestId !== null && !REQUEST_ID.test(requestId)) {
    return googleError(400, "INVALID_ARGUMENT", `requestId ${requestId} is invalid`);
  }
  // A repeated requestId: the second request is ignored, the first one's operation returned.
  const first = requestId === null ? undefined : st.byRequestId.get(requestId);
  if (first) return Response.json(st.batches.get(first)!.operation);
  const name = `projects/${project}/locations/${region}/batches/${batchId}`;
  if (st.batches.has(batchId)) {
    return googleError(
      409,
      "ALREADY_EXISTS",
      `Already exists: Failed to create batch: Batch ${name}`,
    );
  }
  const uuid = crypto.randomUUID();
  const resource = {
    ...(body as Record<string, unknown>),
    name,
    uuid,
    createTime: new Date().toISOString(),
    state: "PENDING",
  };
  const operation = {
    name: `projects/${project}/regions/${region}/operations/${uuid}`,
    metadata: {
      "@type": "type.googleapis.com/google.cloud.dataproc.v1.BatchOperationMetadata",
      batch: name,
      batchUuid: uuid,
      operationType: "BATCH",
    },
  };
  (resource as Record<string, unknown>).operation = operation.name;
  const stored: StoredBatch = { resource, operation, gets: 0 };
  st.batches.set(batchId, stored);
  st.options.execute?.(resource).then(
    () => stored.executed = { state: "SUCCEEDED" },
    (err) => stored.executed = { state: "FAILED", message: (err as Error)?.message ?? String(err) },
  );
  if (requestId !== null) st.byRequestId.set(requestId, batchId);
  return Response.json(operation);
}

/** operations.cancel: the batch of that operation ends CANCELLED (answer: Empty). */
function cancelOperation(st: State, name: string): Response {
  for (const b of st.batches.values()) {
    if (b.operation.name !== name) continue;
    b.resource.state = "CANCELLED";
    b.resource.stateMessage = "Batch cancelled by request";
    b.cancelled = true;
    return Response.json({});
  }
  return googleError(404, "NOT_FOUND", `Not found: Operation ${name}`);
}

/** The batch; each look moves it on: PENDING, RUNNING, then the configured outcome. */
function get(st: State, id: string): Response {
  const b = st.batches.get(id);
  if (!b) return googleError(404, "NOT_FOUND", `Not found: Batch ${id}`);
  b.gets++;
  if (b.cancelled) return Response.json(b.resource);
  const pending = st.options.pendingPolls ?? 1;
  const running = st.options.runningPolls ?? 2;
  const outcome = st.options.outcome ?? "SUCCEEDED";
  if (st.options.execute && b.gets > pending) {
    b.resource.state = b.executed?.state ?? "RUNNING";
    if (b.executed?.message) b.resource.stateMessage = b.executed.message;
    return Response.json(b.resource);
  }
  if (b.gets <= pending) b.resource.state = "PENDING";
  else if (b.gets <= pending + running || outcome === "NEVER") b.resource.state = "RUNNING";
  else {
    b.resource.state = outcome;
    if (outcome !== "SUCCEEDED" && st.options.stateMessage) {
      b.resource.stateMessage = st.options.stateMessage;
    }
  }
  return Response.json(b.resource);
}

function listen(handler: (req: Request) => Promise<Response>): Deno.HttpServer<Deno.NetAddr> {
  for (let port = 18190; port <= 18199; port++) {
    try {
      return Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, handler);
    } catch (err) {
      if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    }
  }
  throw new Error("the Dataproc stand-in found no free port in 18190-18199");
}

/**
 * Dataproc's part, played on this machine: read the script the batch names
 * beside the lake (`sparkSqlBatch.queryFileUri`) and run it with its
 * `queryVariables` on a local `spark-sql` of the stack (`master`, e.g.
 * local[2]); the GCS connector reads and writes the emulator's bucket.
 * For `StandinOptions.execute`.
 */
export async function runBatchOnLocalSpark(
  store: ObjectStore,
  lakeUri: string,
  batch: Record<string, unknown>,
  master: string,
): Promise<void> {
  const home = await stackSparkHome();
  if (!home) throw new Error("deno task stack up spark installed no Spark");
  const sql = batch.sparkSqlBatch as { queryFileUri: string; queryVariables: ScriptVariables };
  const script = new TextDecoder().decode(
    await store.get(sql.queryFileUri.slice(`${lakeUri}/`.length)),
  );
  await sparkSqlRunner({
    home,
    master,
    conf: {
      "spark.sql.catalogImplementation": "in-memory",
      "spark.sql.shuffle.partitions": "2",
      "spark.driver.extraJavaOptions": await shortDriverJavaOptions(),
    },
    timeoutMs: 600_000,
    maxExecutorFailures: 10,
    gcs: { jar: GCS_CONNECTOR_JAR, endpoint: gcsEndpoint(), projectId: "test" },
  })({
    runKey: "standin",
    script,
    scriptUri: sql.queryFileUri,
    variables: sql.queryVariables,
    gcs: true,
  });
}
