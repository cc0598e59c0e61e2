/**
 * Quota alerts (src/alerts): `GET /api/v1/quota/alerts` lists them with the
 * batch layer's verdict and each output's delivery state (a delivery that
 * failed for good says so here); `GET /api/v1/quota/alerts/stream` is a
 * Server-Sent Events stream for dashboards: the current hour's alerts on
 * connect, then each new one (resumable with `Last-Event-ID`);
 * `GET /api/v1/quota/reconciliation` is the batch layer's per-hour agreement;
 * `GET /api/v1/quota/usage` each user's running usage of an hour, nearest to
 * their quota first. The SQL is the alert store's (src/alerts/store.ts).
 */
import type { SSEStreamingApi } from "hono/streaming";
import { streamSSE } from "hono/streaming";
import {
  type AlertFeed,
  alertJson,
  alertVerdicts,
  listAlerts,
  type ListedAlert,
  type QuotaAlert,
  usageOfHour,
} from "../alerts/mod.ts";
import { HOUR_MS, hourStart } from "../core/window.ts";
import { UserError } from "../errors.ts";
import type { ApiContext } from "./context.ts";
import {
  choiceParam,
  DAY_MS,
  EMAIL_PARAM,
  FROM_PARAM,
  intParam,
  iso,
  limitParam,
  parseRange,
  timeParam,
  TO_PARAM,
} from "./params.ts";
import type { RouteDef, Schema } from "./route.ts";

/** How often an idle stream sends a comment line, so proxies keep it open. */
const KEEPALIVE_MS = 15_000;
/** Stored alerts read per query while a stream catches up. */
const PAGE = 1_000;

/** One alert as every output carries it (src/alerts/types.ts alertJson). */
const ALERT_SCHEMA: Schema = {
  type: "object",
  required: [
    "id",
    "email",
    "hour",
    "threshold",
    "quota",
    "usage",
    "crossed_at",
    "detected_at",
    "source",
  ],
  properties: {
    id: { type: "integer" },
    email: { type: "string" },
    hour: { type: "string", format: "date-time" },
    threshold: { type: "number" },
    quota: { type: "number" },
    usage: { type: "number" },
    crossed_at: { type: ["string", "null"], format: "date-time" },
    detected_at: { type: "string", format: "date-time" },
    source: { enum: ["speed", "batch"] },
    partition: { type: "integer" },
    offset: { type: "integer" },
  },
};

function alertsOff(ctx: ApiContext): void {
  if (!ctx.plan.speed.quotaAlerts.enabled) {
    throw new UserError("quota alerts are off (speed.quota_alerts.enabled: false)", {
      status: 404,
    });
  }
}

const SOURCE = choiceParam(
  "source",
  "Only alerts raised by this layer.",
  [
    "speed",
    "batch",
  ] as const,
  undefined,
);
const DELIVERY = choiceParam(
  "delivery",
  "Only alerts with a delivery in this state.",
  [
    "pending",
    "delivered",
    "failed",
  ] as const,
  undefined,
);
const LIST_LIMIT = limitParam(
  "At most this many alerts, oldest first (default 1000).",
  1_000,
  10_000,
);

function listedJson(l: ListedAlert) {
  return {
    ...alertJson(l.alert),
    batch: l.batch,
    deliveries: Object.fromEntries(
      Object.entries(l.deliveries).map(([output, d]) => [output, {
        state: d.state,
        attempts: d.attempts,
        last_error: d.lastError,
        delivered_at: d.deliveredAt === null ? null : iso(d.deliveredAt),
      }]),
    ),
  };
}

function listRoute(ctx: ApiContext): RouteDef {
  return {
    method: "GET",
    path: "/api/v1/quota/alerts",
    operationId: "getQuotaAlerts",
    tag: "data",
    summary: "Quota alerts of the hours in `from`..`to`, with the batch layer's verdict and " +
      "each output's delivery state.",
    description: "One alert per (email, hour, threshold): raised by the speed layer when the " +
      "usage reached the threshold (source `speed`, with the crossing event), or by the batch " +
      "layer for a threshold reached without one (source `batch`). `batch.status` is " +
      "`confirmed`, `unconfirmed` or `late` once the hour is batched. `delivery=failed` lists " +
      "the alerts an output gave up on.",
    params: [FROM_PARAM, TO_PARAM, EMAIL_PARAM, SOURCE, DELIVERY, LIST_LIMIT],
    responses: {
      200: "`{ from, to, alerts: [{ id, email, hour, threshold, quota, usage, crossed_at, " +
        "detected_at, source, partition, offset, batch, deliveries }] }`",
      400: "A bad parameter.",
    },
    handler: async (c) => {
      const q = (n: string) => c.req.query(n);
      const filter = {
        email: EMAIL_PARAM.read(q("email")),
        source: SOURCE.read(q("source")),
        delivery: DELIVERY.read(q("delivery")),
        limit: LIST_LIMIT.read(q("limit")),
      };
      const { from, to } = parseRange(q, {
        defaultMs: DAY_MS,
        maxMs: 366 * DAY_MS,
        now: ctx.clock(),
      });
      // An empty range stays empty though its start widens to the hour.
      const fromHour = to > from ? hourStart(from) : to;
      const alerts = await listAlerts(ctx.db, { ...filter, fromHour, to });
      return c.json({ from: iso(fromHour), to: iso(to), alerts: alerts.map(listedJson) });
    },
  };
}

const SINCE = intParam(
  "since",
  "Replay the stored alerts with an id above this one first, instead of the current hour's.",
  0,
  999_999_999_999_999,
  undefined,
);

/** `since`, or the `Last-Event-ID` header of a reconnecting EventSource. */
function sinceOf(query: string | undefined, header: string | undefined): number | undefined {
  if (query !== undefined) return SINCE.read(query);
  if (header === undefined) return undefined;
  if (!/^\d{1,15}$/.test(header.trim())) {
    throw new UserError(
      `Last-Event-ID: expected an alert id (a non-negative integer), got ${JSON.stringify(header)}`,
    );
  }
  return Number(header.trim());
}

/** Pages of stored alerts, oldest first, from a cursor on their id. */
async function* stored(
  read: (afterId: number) => Promise<QuotaAlert[]>,
  afterId: number,
): AsyncGenerator<QuotaAlert> {
  for (;;) {
    const page = await read(afterId);
    yield* page;
    if (page.length < PAGE) return;
    afterId = page[page.length - 1].id;
  }
}

/**
 * Writes the catch-up (`past`), then live alerts from the feed until the
 * client or the feed goes away, each alert once. The feed is subscribed to
 * before the catch-up is read, so nothing falls between the two.
 */
async function pump(
  stream: SSEStreamingApi,
  feed: AlertFeed,
  keep: (a: QuotaAlert) => boolean,
  past: () => AsyncGenerator<QuotaAlert>,
): Promise<void> {
  const queue: QuotaAlert[] = [];
  let wake: (() => void) | undefined;
  const poke = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const unsubscribe = feed.subscribe((a) => {
    if (!keep(a)) return;
    queue.push(a);
    poke();
  });
  const ended = () => stream.aborted || stream.closed || feed.closed.aborted;
  stream.onAbort(poke);
  feed.closed.addEventListener("abort", poke, { once: true });
  const sent = new Set<number>();
  const send = async (a: QuotaAlert) => {
    if (sent.has(a.id)) return;
    sent.add(a.id);
    await stream.writeSSE({
      event: "quota_alert",
      id: String(a.id),
      data: JSON.stringify(alertJson(a)),
    });
  };
  try {
    for await (const a of past()) if (keep(a)) await send(a);
    await stream.write(": quota alerts stream\n\n");
    while (!ended()) {
      while (queue.length > 0 && !ended()) await send(queue.shift()!);
      if (ended()) break;
      const idle = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), KEEPALIVE_MS);
        wake = () => {
          clearTimeout(timer);
          resolve(false);
        };
      });
      if (idle && !ended()) await stream.write(": keepalive\n\n");
    }
  } finally {
    unsubscribe();
    feed.closed.removeEventListener("abort", poke);
  }
}

function streamRoute(ctx: ApiContext): RouteDef {
  return {
    method: "GET",
    path: "/api/v1/quota/alerts/stream",
    operationId: "streamQuotaAlerts",
    tag: "data",
    summary: "Server-Sent Events: the current hour's quota alerts, then each new one as it " +
      "becomes durable.",
    description: "Events `quota_alert` with the alert's id as the event id and its JSON as " +
      "data. On connect the stream sends the alerts of the current UTC hour (event time) " +
      "first; a client that reconnects with `Last-Event-ID` (or `since=<id>`) gets the " +
      "alerts after that id instead. A comment line every 15 s keeps idle connections open.",
    params: [EMAIL_PARAM, SINCE],
    eventData: { event: "quota_alert", schema: ALERT_SCHEMA },
    responses: {
      200: "An event stream (text/event-stream).",
      400: "A bad parameter.",
      404: "Quota alerts or their stream are off.",
    },
    handler: (c) => {
      alertsOff(ctx);
      const feed = ctx.alerts;
      if (!feed || !ctx.plan.speed.quotaAlerts.outputs.stream) {
        throw new UserError(
          "the quota alert stream is off (speed.quota_alerts.outputs.stream.enabled)",
          { status: 404 },
        );
      }
      const email = EMAIL_PARAM.read(c.req.query("email"));
      const since = sinceOf(c.req.query("since"), c.req.header("Last-Event-ID"));
      const hour = hourStart(ctx.clock());
      const past = since === undefined
        ? () => stored((after) => feed.ofHoursFrom(hour, after, PAGE), 0)
        : () => stored((after) => feed.after(after, PAGE), since);
      const keep = (a: QuotaAlert) => email === undefined || a.email === email;
      return streamSSE(c, (stream) => pump(stream, feed, keep, past));
    },
  };
}

function reconciliationRoute(ctx: ApiContext): RouteDef {
  return {
    method: "GET",
    path: "/api/v1/quota/reconciliation",
    operationId: "getQuotaReconciliation",
    tag: "data",
    summary: "Per batched hour and threshold: speed alerts the batch layer confirmed, did not " +
      "confirm, and the late alerts it raised.",
    params: [FROM_PARAM, TO_PARAM],
    responses: {
      200: "`{ from, to, hours: [{ hour, threshold, speed_alerts, confirmed, unconfirmed, late, " +
        "run_id, computed_at }] }`",
      400: "A bad parameter.",
    },
    handler: async (c) => {
      const { from, to } = parseRange((n) => c.req.query(n), {
        defaultMs: 7 * DAY_MS,
        maxMs: 366 * DAY_MS,
        now: ctx.clock(),
      });
      const fromHour = to > from ? hourStart(from) : to;
      const verdicts = await alertVerdicts(ctx.db, fromHour, to);
      return c.json({
        from: iso(fromHour),
        to: iso(to),
        hours: verdicts.map((v) => ({
          hour: iso(v.hour),
          threshold: v.threshold,
          speed_alerts: v.speedAlerts,
          confirmed: v.confirmed,
          unconfirmed: v.unconfirmed,
          late: v.late,
          run_id: v.runId,
          computed_at: iso(v.computedAt),
        })),
      });
    },
  };
}

const USAGE_HOUR = timeParam(
  "hour",
  "One UTC hour (the hour holding this time), e.g. 2026-11-28T10; default the newest hour " +
    "with usage.",
  "2026-11-28T10",
);
const USAGE_LIMIT = limitParam("At most this many users (default 100).", 100, 10_000);

function usageRoute(ctx: ApiContext): RouteDef {
  return {
    method: "GET",
    path: "/api/v1/quota/usage",
    operationId: "getQuotaUsage",
    tag: "data",
    summary: "Each user's running usage of an event-time hour (speed layer), nearest to " +
      "their quota first: who is heading for their quota.",
    params: [USAGE_HOUR, EMAIL_PARAM, USAGE_LIMIT],
    responses: {
      200: "`{ hour, users: [{ email, usage, quota, share, updated_at }] }`",
      400: "A bad parameter.",
    },
    handler: async (c) => {
      const q = (n: string) => c.req.query(n);
      const t = USAGE_HOUR.read(q("hour"));
      const hour = t === undefined ? undefined : hourStart(t);
      const rows = await usageOfHour(ctx.db, {
        hour,
        email: EMAIL_PARAM.read(q("email")),
        limit: USAGE_LIMIT.read(q("limit")),
      });
      const h = hour ?? rows[0]?.hour;
      return c.json({
        hour: h === undefined ? null : iso(h),
        to: h === undefined ? null : iso(h + HOUR_MS),
        users: rows.map((r) => ({
          email: r.email,
          usage: r.usage,
          quota: r.quota,
          share: r.quota > 0 ? Math.round((r.usage / r.quota) * 10_000) / 10_000 : null,
          updated_at: iso(r.updatedAt),
        })),
      });
    },
  };
}

export function quotaAlertRoutes(ctx: ApiContext): RouteDef[] {
  return [listRoute(ctx), streamRoute(ctx), reconciliationRoute(ctx), usageRoute(ctx)];
}
