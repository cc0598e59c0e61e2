/**
 * Batch runs over HTTP: `POST /api/v1/batch/runs` queues an hour or a range
 * through `batch.submit` (the scheduler's and the CLI's code path) and
 * answers 202 at once; `GET /api/v1/batch/runs/:id` and `GET
 * /api/v1/batch/runs` read the run history. A busy hour is the batch layer's
 * `HourBusyError`, a `UserError` with status 409, mapped by the app's onError.
 */
import { UserError } from "../errors.ts";
import { hourRange, type RunRecord, type RunStatus } from "../batch/mod.ts";
import type { ApiContext, BatchControl } from "./context.ts";
import { HOUR_MS } from "../core/window.ts";
import { choiceParam, HOUR_PATTERN, hourParam, limitParam, parseHourText } from "./params.ts";
import type { RouteDef } from "./route.ts";

/** Longest range one request may queue: a month of hours. */
export const MAX_HOURS_PER_REQUEST = 31 * 24;

const STATUSES: readonly RunStatus[] = ["queued", "running", "succeeded", "failed", "conflict"];

function requireBatch(ctx: ApiContext): BatchControl {
  if (!ctx.batch) {
    throw new UserError("the batch layer is not running in this process", { status: 503 });
  }
  return ctx.batch;
}

const isoOrNull = (
  ms: number | undefined,
) => (ms === undefined ? null : new Date(ms).toISOString());

/** A run as JSON: hour as its label and ISO time, times in ISO-8601. */
export function runJson(r: RunRecord) {
  return {
    runId: r.runId,
    hour: new Date(r.hour).toISOString(),
    trigger: r.trigger,
    status: r.status,
    queuedAt: isoOrNull(r.queuedAt),
    startedAt: isoOrNull(r.startedAt),
    finishedAt: isoOrNull(r.finishedAt),
    durationMs: r.startedAt !== undefined && r.finishedAt !== undefined
      ? r.finishedAt - r.startedAt
      : null,
    summary: {
      rowsRead: r.rowsRead ?? null,
      filesRead: r.filesRead ?? null,
      rowsWritten: r.rowsWritten ?? null,
      breaches: r.breaches ?? null,
      unknownDevices: r.unknownDevices ?? null,
      unknownRows: r.unknownRows ?? null,
    },
    lakeComplete: r.lakeComplete ?? null,
    // Runs off this process (Dataproc) link to where their logs are.
    consoleUrl: r.consoleUrl ?? null,
    note: r.note ?? null,
    error: r.error ?? null,
  };
}

const HOUR_FIELD = { type: "string", pattern: HOUR_PATTERN, examples: ["2026-11-28T10"] };

/** The POST body: one hour, or a range of hours (both ends included, in either order). */
const BODY = {
  oneOf: [
    {
      type: "object",
      required: ["hour"],
      additionalProperties: false,
      properties: { hour: HOUR_FIELD },
    },
    {
      type: "object",
      required: ["from", "to"],
      additionalProperties: false,
      properties: {
        from: HOUR_FIELD,
        to: { ...HOUR_FIELD, description: "Included.", examples: ["2026-11-28T23"] },
      },
    },
  ],
};

/** The body's fields, checked as BODY states them. */
function bodyFields(body: unknown): Record<string, number> {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new UserError('body: expected a JSON object { "hour": … } or { "from": …, "to": … }');
  }
  const keys = Object.keys(body);
  const has = (k: string) => keys.includes(k);
  if (has("hour") && (has("from") || has("to"))) {
    throw new UserError("hour: give either hour or from/to, not both");
  }
  if (!has("hour") && !has("from") && !has("to")) {
    throw new UserError('hour: missing; give "hour" or "from" and "to"');
  }
  if (has("from") !== has("to")) {
    throw new UserError(`${has("from") ? "to" : "from"}: missing; give both "from" and "to"`);
  }
  const extra = keys.filter((k) => !["hour", "from", "to"].includes(k));
  if (extra.length > 0) {
    throw new UserError(`body: unexpected field ${JSON.stringify(extra[0])}`);
  }
  const out: Record<string, number> = {};
  for (const [name, v] of Object.entries(body as Record<string, unknown>)) {
    if (typeof v !== "string") {
      throw new UserError(
        `${name}: expected a string like "2026-11-28T10", got ${JSON.stringify(v)}`,
      );
    }
    out[name] = parseHourText(name, v);
  }
  return out;
}

/**
 * The hours a POST body names: `{ hour }` or `{ from, to }` (both included).
 * An hour not over yet and a range too long for one request are conflicts
 * with the state of things (409: later, or split), not malformed requests.
 */
function hoursOf(body: unknown, now: number): number[] {
  const f = bodyFields(body);
  const [from, to] = f.hour !== undefined ? [f.hour, f.hour] : [f.from, f.to].sort((a, b) => a - b);
  if ((to - from) / HOUR_MS + 1 > MAX_HOURS_PER_REQUEST) {
    throw new UserError(
      `to: at most ${MAX_HOURS_PER_REQUEST} hours per request; split the range`,
      { status: 409 },
    );
  }
  if (to + HOUR_MS > now) {
    throw new UserError(
      `${f.hour !== undefined ? "hour" : "to"}: ${
        new Date(to).toISOString().slice(0, 13)
      } has not ended yet`,
      { status: 409 },
    );
  }
  return hourRange(from, to);
}

const LIMIT = limitParam("How many runs (1-1000).", 20, 1000);
const HOUR = hourParam("hour", "Only runs of this hour (e.g. 2026-11-28T10).");
const STATUS = choiceParam("status", "Only runs with this status.", STATUSES, undefined);

function submitRoute(ctx: ApiContext): RouteDef {
  return {
    method: "POST",
    path: "/api/v1/batch/runs",
    operationId: "submitBatchRuns",
    tag: "batch",
    summary: "Queue the batch job for an hour or a range of hours (the scheduler's code path).",
    description: "Needs `Authorization: Bearer <api.token>`; with no token configured, only " +
      "loopback clients may call it.",
    mutating: true,
    body: BODY,
    responses: {
      202: "`{ runIds: [...] }`; Location names the first run.",
      400: "A bad body; the message names the field.",
      401: "Missing or wrong bearer token.",
      403: "No token configured and the client is not on loopback.",
      409: "An hour is already running, has not ended yet, or the range is longer than " +
        `${MAX_HOURS_PER_REQUEST} hours.`,
      503: "The batch layer is not running in this process.",
    },
    handler: async (c) => {
      const batch = requireBatch(ctx);
      let body: unknown;
      try {
        body = await c.req.json();
      } catch {
        throw new UserError("body: expected JSON (Content-Type: application/json)");
      }
      const hours = hoursOf(body, ctx.clock());
      const { runIds } = await batch.submit(hours, "api");
      c.header("Location", `/api/v1/batch/runs/${runIds[0]}`);
      return c.json({ runIds }, 202);
    },
  };
}

function getRoute(ctx: ApiContext): RouteDef {
  return {
    method: "GET",
    path: "/api/v1/batch/runs/:id",
    operationId: "getBatchRun",
    tag: "batch",
    summary: "One batch run: status and summary.",
    params: [{
      name: "id",
      in: "path",
      required: true,
      description: "Run id, as returned by POST.",
      schema: { type: "string", pattern: "^[0-9]{1,18}$" },
    }],
    responses: {
      200: "The run; `consoleUrl` is the Dataproc batch's Cloud console page for a run on " +
        "Dataproc (recorded once the batch exists), null otherwise.",
      400: "Not a run id.",
      404: "No such run.",
    },
    handler: async (c) => {
      const batch = requireBatch(ctx);
      const id = c.req.param("id") ?? "";
      if (!/^[0-9]{1,18}$/.test(id)) {
        throw new UserError(`id: expected a run id (digits), got ${JSON.stringify(id)}`);
      }
      const run = await batch.getRun(id);
      if (!run) throw new UserError(`id: no batch run ${id}`, { status: 404 });
      return c.json(runJson(run));
    },
  };
}

function listRoute(ctx: ApiContext): RouteDef {
  return {
    method: "GET",
    path: "/api/v1/batch/runs",
    operationId: "listBatchRuns",
    tag: "batch",
    summary: "Recent batch runs, newest first.",
    params: [LIMIT, HOUR, STATUS],
    responses: { 200: "`{ runs: [...] }`", 400: "A bad parameter." },
    handler: async (c) => {
      const batch = requireBatch(ctx);
      const limit = LIMIT.read(c.req.query("limit"));
      const hour = HOUR.read(c.req.query("hour"));
      const status = STATUS.read(c.req.query("status"));
      const runs = await batch.listRuns({ limit, hour, status });
      return c.json({ runs: runs.map(runJson) });
    },
  };
}

export function batchRunRoutes(ctx: ApiContext): RouteDef[] {
  return [submitRoute(ctx), getRoute(ctx), listRoute(ctx)];
}
