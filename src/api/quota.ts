/**
 * `GET /api/v1/quota/breaches`: users whose usage in an hour exceeded their
 * quota, for one hour or a range: the batch layer's user_quota_limit where
 * the hour's batch is current, else the speed layer's running usage
 * (quota_usage, kept by the quota alerts) above the quota, so a breach shows
 * while its hour runs rather than after the batch (the users_over_quota
 * view, sql/009_quota_alerts.sql). Each breach names its source.
 */
import { UserError } from "../errors.ts";
import type { ApiContext } from "./context.ts";
import { HOUR_MS, hourStart } from "../core/window.ts";
import { DAY_MS, iso, parseRange, parseText, parseTime } from "./params.ts";
import { EMAIL_PARAM, FROM_PARAM, type RouteDef, TO_PARAM } from "./route.ts";
import { isoOf, numOf } from "./_util.ts";

const SQL_RANGE = `SELECT email, usage, quota, timestamp, source FROM users_over_quota
  WHERE timestamp >= $1::timestamp AND timestamp < $2::timestamp
  ORDER BY timestamp, usage DESC, email LIMIT 10000`;
const SQL_RANGE_EMAIL = `SELECT email, usage, quota, timestamp, source FROM users_over_quota
  WHERE timestamp >= $1::timestamp AND timestamp < $2::timestamp AND email = $3
  ORDER BY timestamp LIMIT 10000`;

export function quotaRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/api/v1/quota/breaches",
    operationId: "getQuotaBreaches",
    tag: "data",
    summary: "Users over their hourly quota, for one hour (`hour`) or a range (`from`/`to`).",
    params: [
      {
        name: "hour",
        in: "query",
        description: "One UTC hour, e.g. 2026-11-28T10; excludes from/to.",
        schema: { type: "string", examples: ["2026-11-28T10"] },
      },
      FROM_PARAM,
      TO_PARAM,
      EMAIL_PARAM,
    ],
    responses: {
      200: "`{ from, to, breaches: [{ email, usage, quota, timestamp, over, source }] }`: " +
        "`source` is `batch` (the hour's batch is current) or `speed` (the running usage of " +
        "an hour not batched yet; needs speed.quota_alerts).",
      400: "A bad parameter.",
    },
    handler: async (c) => {
      const q = (n: string) => c.req.query(n);
      const hourText = q("hour");
      const email = parseText("email", q("email"));
      let from: number, to: number;
      if (hourText !== undefined) {
        if (q("from") !== undefined || q("to") !== undefined) {
          throw new UserError("hour: give either hour or from/to, not both");
        }
        const t = parseTime("hour", hourText);
        from = hourStart(t);
        to = from + HOUR_MS;
      } else {
        ({ from, to } = parseRange(q, {
          defaultMs: DAY_MS,
          maxMs: 366 * DAY_MS,
          now: ctx.clock(),
        }));
      }
      const rows = await ctx.db.query<
        { email: string; usage: unknown; quota: unknown; timestamp: Date; source: string }
      >(
        email === undefined ? SQL_RANGE : SQL_RANGE_EMAIL,
        email === undefined
          ? [new Date(from), new Date(to)]
          : [new Date(from), new Date(to), email],
      );
      return c.json({
        from: iso(from),
        to: iso(to),
        breaches: rows.map((r) => ({
          email: r.email,
          usage: numOf(r.usage),
          quota: numOf(r.quota),
          over: numOf(r.usage) - numOf(r.quota),
          timestamp: isoOf(r.timestamp),
          source: r.source,
        })),
      });
    },
  }];
}
