/**
 * `GET /api/v1/quota/breaches`: users whose usage in an hour exceeded their
 * quota, for one hour or a range: the batch layer's user_quota_limit where
 * the hour's batch is current, else the speed layer's running usage
 * (quota_usage, kept by the quota alerts) above the quota, so a breach shows
 * while its hour runs rather than after the batch (the users_over_quota
 * view, read by src/alerts). Each breach names its source.
 */
import type { ApiContext } from "./context.ts";
import { HOUR_MS, hourStart } from "../core/window.ts";
import { DAY_MS, EMAIL_PARAM, FROM_PARAM, iso, parseRange, timeParam, TO_PARAM } from "./params.ts";
import type { RouteDef } from "./route.ts";
import { overQuota } from "../alerts/mod.ts";

const HOUR = timeParam(
  "hour",
  "One UTC hour (the hour holding this time), e.g. 2026-11-28T10. With `from`/`to` too, the " +
    "part of that hour inside the range.",
  "2026-11-28T10",
);

export function quotaRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/api/v1/quota/breaches",
    operationId: "getQuotaBreaches",
    tag: "data",
    summary:
      "Users over their hourly quota, for one hour (`hour`), a range (`from`/`to`) or both " +
      "(their intersection).",
    params: [HOUR, FROM_PARAM, TO_PARAM, EMAIL_PARAM],
    responses: {
      200: "`{ from, to, breaches: [{ email, usage, quota, timestamp, over, source }] }`: " +
        "`source` is `batch` (the hour's batch is current) or `speed` (the running usage of " +
        "an hour not batched yet; needs speed.quota_alerts).",
      400: "A bad parameter.",
    },
    handler: async (c) => {
      const q = (n: string) => c.req.query(n);
      const hour = HOUR.read(q("hour"));
      const email = EMAIL_PARAM.read(q("email"));
      let { from, to } = parseRange(q, {
        defaultMs: DAY_MS,
        maxMs: 366 * DAY_MS,
        now: ctx.clock(),
      });
      if (hour !== undefined) {
        // The hour, cut to the range when one is given too (an empty cut is an empty answer).
        const start = hourStart(hour);
        const given = q("from") !== undefined || q("to") !== undefined;
        from = given ? Math.max(from, start) : start;
        to = given ? Math.max(from, Math.min(to, start + HOUR_MS)) : start + HOUR_MS;
      }
      const rows = await overQuota(ctx.db, from, to, email);
      return c.json({
        from: iso(from),
        to: iso(to),
        breaches: rows.map((r) => ({
          email: r.email,
          usage: r.usage,
          quota: r.quota,
          over: r.usage - r.quota,
          timestamp: iso(r.hour),
          source: r.source,
        })),
      });
    },
  }];
}
