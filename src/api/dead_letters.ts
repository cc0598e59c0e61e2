/**
 * `GET /api/v1/dead-letters`: messages that failed validation, counted by
 * reason, from the dead_letters table (every instance's, durable), plus this
 * process's counter since start when the speed layer runs here.
 */
import type { ApiContext } from "./context.ts";
import { FROM_PARAM, iso, TO_PARAM } from "./params.ts";
import type { RouteDef } from "./route.ts";
import { deadLetterCounts } from "../speed/mod.ts";

// No range given means all time: bounds wide enough for any stored row.
const EPOCH = new Date(0);
const FAR_FUTURE = new Date(Date.UTC(9999, 0, 1));

export function deadLetterRoutes(ctx: ApiContext): RouteDef[] {
  return [{
    method: "GET",
    path: "/api/v1/dead-letters",
    operationId: "getDeadLetters",
    tag: "data",
    summary: "Dead-lettered messages counted by reason (all time, or `from`/`to` on arrival).",
    params: [FROM_PARAM, TO_PARAM],
    responses: {
      200: "`{ from, to, total, reasons: [{ reason, count, firstAt, lastAt }], process }`",
      400: "A bad parameter.",
    },
    handler: async (c) => {
      const f = FROM_PARAM.read(c.req.query("from"));
      const t = TO_PARAM.read(c.req.query("to"));
      const from = f === undefined ? EPOCH : new Date(f);
      // `to` at or before `from` is an empty range: the query finds nothing.
      const to = t === undefined ? FAR_FUTURE : new Date(t);
      const reasons = (await deadLetterCounts(ctx.db, from, to)).map((r) => ({
        ...r,
        firstAt: iso(r.firstAt),
        lastAt: iso(r.lastAt),
      }));
      return c.json({
        from: f === undefined ? null : from.toISOString(),
        to: t === undefined ? null : to.toISOString(),
        total: reasons.reduce((n, r) => n + r.count, 0),
        reasons,
        // Since this process started; null when the speed layer runs elsewhere.
        process: ctx.speed ? { deadLetters: ctx.speed.status().counters.deadLetters } : null,
      });
    },
  }];
}
