/**
 * Quota alerts (src/alerts): `GET /api/v1/quota/alerts` lists them with the
 * batch layer's verdict and each output's delivery state (a delivery that
 * failed for good says so here); `GET /api/v1/quota/alerts/stream` is a
 * Server-Sent Events stream of new alerts for dashboards (resumable with
 * `Last-Event-ID`); `GET /api/v1/quota/reconciliation` is the batch layer's
 * per-hour agreement; `GET /api/v1/quota/usage` each user's running usage of
 * an hour, nearest to their quota first.
 */
import { streamSSE } from "hono/streaming";
import { alertJson, type AlertRow, type QuotaAlert, toAlert } from "../alerts/mod.ts";
import { HOUR_MS, hourStart } from "../core/window.ts";
import { UserError } from "../errors.ts";
import type { ApiContext } from "./context.ts";
import {
  DAY_MS,
  iso,
  parseChoice,
  parseLimit,
  parseRange,
  parseText,
  parseTime,
} from "./params.ts";
import { EMAIL_PARAM, FROM_PARAM, type RouteDef, TO_PARAM } from "./route.ts";
import { isoOf, numOf } from "./_util.ts";

const LIST_SQL = `SELECT a.id, a.hour, a.email, a.threshold, a.quota, a.usage, a.crossed_at,
    a.detected_at, a.source, a."partition", a."offset", a.batch_status, a.batch_usage,
    (SELECT COALESCE(json_agg(json_build_object('output', d.output, 'state', d.state,
        'attempts', d.attempts, 'last_error', d.last_error, 'delivered_at', d.delivered_at)
        ORDER BY d.output), '[]')::text
     FROM quota_alert_deliveries d WHERE d.alert_id = a.id) AS deliveries
  FROM quota_alerts a
  WHERE a.hour >= $1::timestamp AND a.hour < $2::timestamp
    AND ($3::text IS NULL OR a.email = $3)
    AND ($4::text IS NULL OR a.source = $4)
    AND ($5::text IS NULL OR EXISTS (
      SELECT 1 FROM quota_alert_deliveries x WHERE x.alert_id = a.id AND x.state = $5))
  ORDER BY a.id
  LIMIT $6`;

const RECONCILIATION_SQL = `SELECT hour, threshold, speed_alerts, confirmed, unconfirmed, late,
    run_id, computed_at
  FROM quota_alert_reconciliation
  WHERE hour >= $1::timestamp AND hour < $2::timestamp
  ORDER BY hour, threshold`;

const USAGE_SQL = `SELECT u.hour, u.email, u.usage, u.quota, u.updated_at
  FROM quota_usage u
  WHERE u.hour = COALESCE($1::timestamp, (SELECT max(hour) FROM quota_usage))
    AND ($2::text IS NULL OR u.email = $2)
  ORDER BY CASE WHEN u.quota > 0 THEN u.usage::float8 / u.quota END DESC NULLS LAST, u.email
  LIMIT $3`;

interface ListRow extends AlertRow {
  batch_status: string | null;
  batch_usage: number | null;
  deliveries: string;
}

/** How often an idle stream sends a comment line, so proxies keep it open. */
const KEEPALIVE_MS = 15_000;

export function quotaAlertRoutes(ctx: ApiContext): RouteDef[] {
  const alertsOff = () => {
    if (!ctx.plan.speed.quotaAlerts.enabled) {
      throw new UserError("quota alerts are off (speed.quota_alerts.enabled: false)", {
        status: 404,
      });
    }
  };
  return [
    {
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
      params: [
        FROM_PARAM,
        TO_PARAM,
        EMAIL_PARAM,
        {
          name: "source",
          in: "query",
          description: "Only alerts raised by this layer.",
          schema: { type: "string", enum: ["speed", "batch"] },
        },
        {
          name: "delivery",
          in: "query",
          description: "Only alerts with a delivery in this state.",
          schema: { type: "string", enum: ["pending", "delivered", "failed"] },
        },
        {
          name: "limit",
          in: "query",
          description: "At most this many alerts, oldest first (default 1000).",
          schema: { type: "integer", minimum: 1, maximum: 10000 },
        },
      ],
      responses: {
        200: "`{ from, to, alerts: [{ id, email, hour, threshold, quota, usage, crossed_at, " +
          "detected_at, source, partition, offset, batch, deliveries }] }`",
        400: "A bad parameter.",
      },
      handler: async (c) => {
        const q = (n: string) => c.req.query(n);
        const email = parseText("email", q("email"));
        const source = q("source") === undefined
          ? undefined
          : parseChoice("source", q("source"), ["speed", "batch"] as const, "speed");
        const delivery = q("delivery") === undefined ? undefined : parseChoice(
          "delivery",
          q("delivery"),
          ["pending", "delivered", "failed"] as const,
          "failed",
        );
        const limit = parseLimit("limit", q("limit"), 1_000, 10_000);
        const { from, to } = parseRange(q, {
          defaultMs: DAY_MS,
          maxMs: 366 * DAY_MS,
          now: ctx.clock(),
        });
        const rows = await ctx.db.query<ListRow>(LIST_SQL, [
          new Date(hourStart(from)),
          new Date(to),
          email ?? null,
          source ?? null,
          delivery ?? null,
          limit,
        ]);
        return c.json({
          from: iso(hourStart(from)),
          to: iso(to),
          alerts: rows.map((r) => ({
            ...alertJson(toAlert(r)),
            batch: r.batch_status === null
              ? null
              : { status: r.batch_status, usage: numOf(r.batch_usage) },
            deliveries: Object.fromEntries(
              (JSON.parse(r.deliveries) as {
                output: string;
                state: string;
                attempts: number;
                last_error: string | null;
                delivered_at: string | null;
              }[]).map((d) => [d.output, {
                state: d.state,
                attempts: d.attempts,
                last_error: d.last_error,
                delivered_at: isoOf(d.delivered_at),
              }]),
            ),
          })),
        });
      },
    },
    {
      method: "GET",
      path: "/api/v1/quota/alerts/stream",
      operationId: "streamQuotaAlerts",
      tag: "data",
      summary: "Server-Sent Events: each new quota alert as it becomes durable.",
      description: "Events `quota_alert` with the alert's id as the event id and its JSON as " +
        "data. A client that reconnects with `Last-Event-ID` (or `since=<id>`) first gets the " +
        "alerts it missed. A comment line every 15 s keeps idle connections open.",
      params: [
        EMAIL_PARAM,
        {
          name: "since",
          in: "query",
          description: "Replay the stored alerts with an id above this one first.",
          schema: { type: "integer", minimum: 0 },
        },
      ],
      produces: "text/event-stream",
      responses: {
        200: "An event stream (text/event-stream).",
        400: "A bad parameter.",
        404: "Quota alerts or their stream are off.",
      },
      handler: (c) => {
        alertsOff();
        const feed = ctx.alerts;
        if (!feed || !ctx.plan.speed.quotaAlerts.outputs.stream) {
          throw new UserError(
            "the quota alert stream is off (speed.quota_alerts.outputs.stream.enabled)",
            { status: 404 },
          );
        }
        const email = parseText("email", c.req.query("email"));
        const sinceText = c.req.query("since") ?? c.req.header("Last-Event-ID");
        let since: number | undefined;
        if (sinceText !== undefined) {
          if (!/^\d{1,15}$/.test(sinceText.trim())) {
            throw new UserError(
              `since: expected an alert id (a non-negative integer), got ${
                JSON.stringify(sinceText)
              }`,
            );
          }
          since = Number(sinceText);
        }
        return streamSSE(c, async (stream) => {
          const queue: QuotaAlert[] = [];
          let wake: (() => void) | undefined;
          const poke = () => {
            const w = wake;
            wake = undefined;
            w?.();
          };
          const unsubscribe = feed.subscribe((a) => {
            if (email !== undefined && a.email !== email) return;
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
            // Subscribed first, then the replay: nothing falls between the two.
            if (since !== undefined) {
              let after = since;
              for (;;) {
                const page = await feed.after(after, 1_000);
                for (const a of page) {
                  if (email === undefined || a.email === email) await send(a);
                }
                if (page.length < 1_000) break;
                after = page[page.length - 1].id;
              }
            }
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
        });
      },
    },
    {
      method: "GET",
      path: "/api/v1/quota/reconciliation",
      operationId: "getQuotaReconciliation",
      tag: "data",
      summary: "Per batched hour and threshold: speed alerts the batch layer confirmed, did not " +
        "confirm, and the late alerts it raised.",
      params: [FROM_PARAM, TO_PARAM],
      responses: {
        200:
          "`{ from, to, hours: [{ hour, threshold, speed_alerts, confirmed, unconfirmed, late, " +
          "run_id, computed_at }] }`",
        400: "A bad parameter.",
      },
      handler: async (c) => {
        const q = (n: string) => c.req.query(n);
        const { from, to } = parseRange(q, {
          defaultMs: 7 * DAY_MS,
          maxMs: 366 * DAY_MS,
          now: ctx.clock(),
        });
        const rows = await ctx.db.query<{
          hour: Date;
          threshold: unknown;
          speed_alerts: unknown;
          confirmed: unknown;
          unconfirmed: unknown;
          late: unknown;
          run_id: unknown;
          computed_at: Date;
        }>(RECONCILIATION_SQL, [new Date(hourStart(from)), new Date(to)]);
        return c.json({
          from: iso(hourStart(from)),
          to: iso(to),
          hours: rows.map((r) => ({
            hour: isoOf(r.hour),
            threshold: numOf(r.threshold),
            speed_alerts: numOf(r.speed_alerts),
            confirmed: numOf(r.confirmed),
            unconfirmed: numOf(r.unconfirmed),
            late: numOf(r.late),
            run_id: r.run_id === null ? null : String(r.run_id),
            computed_at: isoOf(r.computed_at),
          })),
        });
      },
    },
    {
      method: "GET",
      path: "/api/v1/quota/usage",
      operationId: "getQuotaUsage",
      tag: "data",
      summary: "Each user's running usage of an event-time hour (speed layer), nearest to " +
        "their quota first: who is heading for their quota.",
      params: [
        {
          name: "hour",
          in: "query",
          description: "One UTC hour, e.g. 2026-11-28T10; default the newest hour with usage.",
          schema: { type: "string", examples: ["2026-11-28T10"] },
        },
        EMAIL_PARAM,
        {
          name: "limit",
          in: "query",
          description: "At most this many users (default 100).",
          schema: { type: "integer", minimum: 1, maximum: 10000 },
        },
      ],
      responses: {
        200: "`{ hour, users: [{ email, usage, quota, share, updated_at }] }`",
        400: "A bad parameter.",
      },
      handler: async (c) => {
        const q = (n: string) => c.req.query(n);
        const hourText = q("hour");
        const hour = hourText === undefined ? undefined : hourStart(parseTime("hour", hourText));
        const email = parseText("email", q("email"));
        const limit = parseLimit("limit", q("limit"), 100, 10_000);
        const rows = await ctx.db.query<{
          hour: Date;
          email: string;
          usage: unknown;
          quota: unknown;
          updated_at: Date;
        }>(USAGE_SQL, [hour === undefined ? null : new Date(hour), email ?? null, limit]);
        const h = hour ?? rows[0]?.hour.getTime();
        return c.json({
          hour: h === undefined ? null : iso(h),
          to: h === undefined ? null : iso(h + HOUR_MS),
          users: rows.map((r) => {
            const usage = numOf(r.usage), quota = numOf(r.quota);
            return {
              email: r.email,
              usage,
              quota,
              share: quota > 0 ? Math.round((usage / quota) * 10_000) / 10_000 : null,
              updated_at: isoOf(r.updated_at),
            };
          }),
        });
      },
    },
  ];
}
