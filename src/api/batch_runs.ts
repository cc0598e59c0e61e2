/**
 * Batch runs over HTTP: `POST /api/v1/batch/runs` queues an hour or a range
 * through `batch.submit` (the scheduler's and the CLI's code path) and
 * answers 202 at once; `GET /api/v1/batch/runs/:id` and `GET
 * /api/v1/batch/runs` read the run history. A busy hour is the batch layer's
 * `HourBusyError`, a `UserError` with status 409, mapped by the app's onError.
 */
import { UserError } from "../errors.ts";
import { hourRange, parseHour, type RunRecord, type RunStatus } from "../batch/mod.ts";
import type { ApiContext, BatchControl } from "./context.ts";
import { HOUR_MS } from "../core/window.ts";
import { parseChoice, parseLimit } from "./params.ts";
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
    note: r.note ?? null,
    error: r.error ?? null,
  };
}

/** The hours a POST body names: `{ hour }` or `{ from, to }` (both included). */
function hoursOf(body: unknown, now: number): number[] {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new UserError('body: expected a JSON object { "hour": … } or { "from": …, "to": … }');
  }
  const b = body as Record<string, unknown>;
  const text = (name: string): string | undefined => {
    const v = b[name];
    if (v === undefined) return undefined;
    if (typeof v !== "string") {
      throw new UserError(
        `${name}: expected a string like "2026-11-28T10", got ${JSON.stringify(v)}`,
      );
    }
    return v;
  };
  const hour = text("hour");
  const fromText = text("from");
  const toText = text("to");
  let hours: number[];
  if (hour !== undefined) {
    if (fromText !== undefined || toText !== undefined) {
      throw new UserError("hour: give either hour or from/to, not both");
    }
    hours = [parseHour(hour, "hour")];
  } else {
    if (fromText === undefined) {
      throw new UserError('hour: missing; give "hour" or "from" and "to"');
    }
    if (toText === undefined) throw new UserError('to: missing; "from" needs "to" (included)');
    const from = parseHour(fromText, "from");
    const to = parseHour(toText, "to");
    if (to < from) throw new UserError(`to: ${toText} is before from ${fromText}`);
    if ((to - from) / HOUR_MS + 1 > MAX_HOURS_PER_REQUEST) {
      throw new UserError(`to: at most ${MAX_HOURS_PER_REQUEST} hours per request`);
    }
    hours = hourRange(from, to);
  }
  const last = hours[hours.length - 1];
  if (last + HOUR_MS > now) {
    throw new UserError(
      `${hour !== undefined ? "hour" : "to"}: ${
        new Date(last).toISOString().slice(0, 13)
      } has not ended yet`,
    );
  }
  return hours;
}

export function batchRunRoutes(ctx: ApiContext): RouteDef[] {
  return [
    {
      method: "POST",
      path: "/api/v1/batch/runs",
      operationId: "submitBatchRuns",
      tag: "batch",
      summary: "Queue the batch job for an hour or a range of hours (the scheduler's code path).",
      description: "Needs `Authorization: Bearer <api.token>`; with no token configured, only " +
        "loopback clients may call it.",
      mutating: true,
      body: {
        oneOf: [
          {
            type: "object",
            required: ["hour"],
            properties: { hour: { type: "string", examples: ["2026-11-28T10"] } },
          },
          {
            type: "object",
            required: ["from", "to"],
            properties: {
              from: { type: "string", examples: ["2026-11-28T00"] },
              to: { type: "string", description: "Included.", examples: ["2026-11-28T23"] },
            },
          },
        ],
      },
      responses: {
        202: "`{ runIds: [...] }`; Location names the first run.",
        400: "A bad body; the message names the field.",
        401: "Missing or wrong bearer token.",
        403: "No token configured and the client is not on loopback.",
        409: "An hour is already running.",
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
    },
    {
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
        schema: { type: "string", pattern: "^[0-9]+$" },
      }],
      responses: { 200: "The run.", 400: "Not a run id.", 404: "No such run." },
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
    },
    {
      method: "GET",
      path: "/api/v1/batch/runs",
      operationId: "listBatchRuns",
      tag: "batch",
      summary: "Recent batch runs, newest first.",
      params: [
        {
          name: "limit",
          in: "query",
          description: "How many runs (1-1000).",
          schema: { type: "integer", minimum: 1, maximum: 1000, default: 20 },
        },
        {
          name: "hour",
          in: "query",
          description: "Only runs of this hour (e.g. 2026-11-28T10).",
          schema: { type: "string" },
        },
        {
          name: "status",
          in: "query",
          description: "Only runs with this status.",
          schema: { type: "string", enum: [...STATUSES] },
        },
      ],
      responses: { 200: "`{ runs: [...] }`", 400: "A bad parameter." },
      handler: async (c) => {
        const batch = requireBatch(ctx);
        const limit = parseLimit("limit", c.req.query("limit"), 20, 1000);
        const h = c.req.query("hour");
        const hour = h === undefined ? undefined : parseHour(h, "hour");
        const s = c.req.query("status");
        const status = s === undefined ? undefined : parseChoice("status", s, STATUSES, "queued");
        const runs = await batch.listRuns({ limit, hour, status });
        return c.json({ runs: runs.map(runJson) });
      },
    },
  ];
}
