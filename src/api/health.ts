/**
 * `GET /health` (the process answers: always 200) and `GET /ready` (every
 * dependency answers: 200, else 503 with the body naming which is down).
 * Each probe has its own short timeout and they run in parallel, so one hung
 * dependency costs one timeout, not the sum.
 */
import type { ApiContext } from "./context.ts";
import type { RouteDef } from "./route.ts";
import { errorText, withTimeout } from "./_util.ts";
import { planHash } from "../config/mod.ts";

interface Component {
  ok: boolean;
  [k: string]: unknown;
}

// A prefix no lake writes to: listing it is one cheap request on GCS and one
// missing-folder check locally, yet it proves the store answers.
const LAKE_PROBE_PREFIX = "_ready_probe/";

async function probe(
  ctx: ApiContext,
  what: string,
  fn: () => Promise<Component>,
): Promise<Component> {
  try {
    return await withTimeout(fn(), ctx.probeTimeoutMs, what);
  } catch (e) {
    return { ok: false, error: errorText(e) };
  }
}

const postgres = (ctx: ApiContext) =>
  probe(ctx, "postgres", async () => {
    const t0 = performance.now();
    await ctx.db.query("SELECT 1");
    return { ok: true, backend: ctx.db.kind, latencyMs: +(performance.now() - t0).toFixed(2) };
  });

const lake = (ctx: ApiContext) =>
  probe(ctx, "lake", async () => {
    if (!ctx.store) return { ok: true, configured: false };
    await ctx.store.list(LAKE_PROBE_PREFIX);
    return { ok: true, uri: ctx.store.uri };
  });

const source = (ctx: ApiContext) =>
  probe(ctx, "source", async () => {
    if (!ctx.source) return { ok: true, configured: false, kind: ctx.plan.source.kind };
    const lag = await ctx.source.lag();
    return {
      ok: true,
      kind: ctx.source.kind,
      connected: true,
      lag: Object.fromEntries([...lag].map(([p, n]) => [String(p), n])),
    };
  });

const speed = (ctx: ApiContext) =>
  probe(ctx, "speed", () => {
    if (!ctx.speed) return Promise.resolve({ ok: true, enabled: false });
    const s = ctx.speed.status();
    return Promise.resolve({
      ok: s.running && s.sinksDown.length === 0,
      state: ctx.speed.phase?.() ?? (s.running ? "running" : "stopped"),
      running: s.running,
      sinksDown: s.sinksDown,
      partitions: s.partitions.map((p) => ({
        partition: p.partition,
        lag: p.lag,
        watermark: p.watermarkMs === null ? null : new Date(p.watermarkMs).toISOString(),
        committedOffset: p.committedOffset,
      })),
    });
  });

const scheduler = (ctx: ApiContext) =>
  probe(ctx, "scheduler", async () => {
    if (!ctx.batch) return { ok: true, configured: false };
    const [last, hours] = await Promise.all([
      ctx.batch.lastCompletedHour(),
      ctx.batch.hoursSummary(),
    ]);
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    return {
      ok: true,
      enabled: ctx.plan.batch.enabled,
      rule: hours.rule,
      lastCompletedHour: iso(last),
      oldestIncompleteHour: iso(hours.oldestIncompleteHour),
      staleHours: hours.staleHours,
    };
  });

// The plan in force: a rejected edit leaves the pipeline ready on the plan it runs.
function config(ctx: ApiContext): Component {
  const s = ctx.config?.status();
  return {
    ok: true,
    generation: s?.generation ?? 1,
    hash: s?.hash ?? planHash(ctx.plan),
    rejected: s?.rejected !== undefined,
  };
}

function readyRoute(ctx: ApiContext): RouteDef {
  return {
    method: "GET",
    path: "/ready",
    operationId: "ready",
    tag: "health",
    summary: "Every dependency answers: source and consumer lag, speed layer, PostgreSQL, " +
      "lake storage, batch scheduler; and the plan in force (generation, hash, whether the " +
      "last reload was rejected).",
    responses: {
      200: "Every component is up.",
      503: "At least one component is down; `down` names them.",
    },
    handler: async (c) => {
      const [src, spd, pg, lk, sch] = await Promise.all([
        source(ctx),
        speed(ctx),
        postgres(ctx),
        lake(ctx),
        scheduler(ctx),
      ]);
      const components = {
        source: src,
        speed: spd,
        postgres: pg,
        lake: lk,
        scheduler: sch,
        config: config(ctx),
      };
      const down = Object.entries(components).filter(([, v]) => !v.ok).map(([k]) => k);
      return c.json(
        { status: down.length ? "unavailable" : "ready", down, components },
        down.length ? 503 : 200,
      );
    },
  };
}

export function healthRoutes(ctx: ApiContext): RouteDef[] {
  return [
    {
      method: "GET",
      path: "/health",
      operationId: "health",
      tag: "health",
      summary: "The process is alive (always 200).",
      responses: { 200: "Alive." },
      handler: (c) => c.json({ status: "ok", uptimeS: Math.round(performance.now() / 1000) }),
    },
    readyRoute(ctx),
  ];
}
