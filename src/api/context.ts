/**
 * What `createApp` needs (`AppDeps`) and what every route reads (`ApiContext`):
 * the dependencies, resolved defaults, and the metric catalog derived from the
 * plan once. The layers are typed structurally here so that the real speed
 * layer, batch runner and event source fit, and tests may pass small fakes.
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import type { ObjectStore } from "../lake/mod.ts";
import type { EventSource } from "../speed/mod.ts";
import type { Registry } from "../metrics.ts";
import type { SpeedStatus } from "../speed/mod.ts";
import type { BackfillStatus } from "../backfill/worker.ts";
import type {
  HoursReport,
  HoursSummary,
  ListRunsOptions,
  RunRecord,
  Trigger,
} from "../batch/mod.ts";
import type { AlertFeed } from "../alerts/mod.ts";
import { log as rootLog, type Logger } from "../log.ts";

/** The part of the speed layer the API reads. */
export interface SpeedStatusSource {
  status(): SpeedStatus;
  /**
   * `starting` while its start runs (the API opens before it, so `/ready`
   * can say so). Default: `running` or `stopped` from `status().running`.
   */
  phase?(): "starting" | "running" | "stopped";
}

/** The part of the batch runner the API drives (the scheduler's code path). */
export interface BatchControl {
  submit(hours: number[], trigger: Trigger): Promise<{ runIds: string[] }>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  listRuns(opts?: ListRunsOptions): Promise<RunRecord[]>;
  lastCompletedHour(): Promise<number | undefined>;
  hours(from: number, to: number): Promise<HoursReport>;
  hoursSummary(): Promise<HoursSummary>;
}

/** The part of the event source the API reads. */
export type SourceProbe = Pick<EventSource, "kind" | "lag">;

/**
 * The reload controller's status as the API shows it (src/runtime's
 * controller fits it; typed here so the API does not import the runtime
 * above it).
 */
export interface ConfigStatusView {
  readonly generation: number;
  readonly hash: string;
  /** When the active generation was first applied, epoch ms. */
  readonly appliedAt: number;
  readonly plan: Plan;
  /** The latest attempt that did not become the active plan, shown as it is. */
  readonly rejected?: { readonly at: number };
  /** The latest reload, shown as it is. */
  readonly last?: { readonly at: number };
}

/** The reload controller, as the API reads it: the active plan, its generation, the last rejected attempt. */
export interface ConfigStatusSource {
  status(): ConfigStatusView;
}

/** The backfill of new or changed metrics, as the API reads it. */
export interface BackfillStatusSource {
  status(): Promise<BackfillStatus>;
}

export interface AppDeps {
  plan: Plan;
  db: Db;
  /** Rendered by `GET /metrics`; the API adds its request metrics to it. */
  registry: Registry;
  /** The lake; `/ready` lists a prefix to prove it answers. */
  store?: Pick<ObjectStore, "list" | "uri">;
  speed?: SpeedStatusSource;
  batch?: BatchControl;
  source?: SourceProbe;
  /** Live quota alerts, for the stream (src/alerts startQuotaAlerts().feed). */
  alerts?: AlertFeed;
  /** Wall clock, epoch ms. Default `Date.now`. */
  clock?: () => number;
  /** Default: the process logger with `component: "api"`. */
  log?: Logger;
  /** Time allowed to each `/ready` probe. Default 2000 ms. */
  probeTimeoutMs?: number;
  /**
   * The reload controller of a running pipeline: when given, the API serves
   * its active plan (not `plan`, the one it started with), generation and
   * rejected attempt.
   */
  config?: ConfigStatusSource;
  /** Progress of backfills, shown in `/api/v1/config`. */
  backfill?: BackfillStatusSource;
}

export type Layer = "speed" | "batch";

/** A metric as the API lists it: the union of the plan's speed and batch metrics. */
export interface MetricInfo {
  readonly name: string;
  readonly layers: readonly Layer[];
  readonly groupBy: readonly string[];
  readonly aggregation: string;
  readonly field: string;
  readonly description?: string;
  /** Batch metric: the speed metric it reconciles with. */
  readonly reconcileWith?: string;
  /** Aggregation of the speed metric (how windows fold into an hour). */
  readonly speedAggregation?: string;
}

export interface ApiContext {
  /** The active plan (it changes with a reload). */
  readonly plan: Plan;
  readonly db: Db;
  readonly registry: Registry;
  readonly store?: AppDeps["store"];
  readonly speed?: SpeedStatusSource;
  readonly batch?: BatchControl;
  readonly source?: SourceProbe;
  readonly alerts?: AlertFeed;
  readonly clock: () => number;
  readonly log: Logger;
  readonly probeTimeoutMs: number;
  /** The metric catalog of the active plan. */
  readonly metrics: ReadonlyMap<string, MetricInfo>;
  readonly config?: ConfigStatusSource;
  readonly backfill?: BackfillStatusSource;
}

export function apiContext(deps: AppDeps): ApiContext {
  let catalogOf: Plan | undefined;
  let catalog = new Map<string, MetricInfo>();
  const active = () => deps.config?.status().plan ?? deps.plan;
  return {
    get plan() {
      return active();
    },
    db: deps.db,
    registry: deps.registry,
    store: deps.store,
    speed: deps.speed,
    batch: deps.batch,
    source: deps.source,
    alerts: deps.alerts,
    clock: deps.clock ?? Date.now,
    log: deps.log ?? rootLog.child({ component: "api" }),
    probeTimeoutMs: deps.probeTimeoutMs ?? 2_000,
    get metrics() {
      const plan = active();
      if (plan !== catalogOf) {
        catalog = metricCatalog(plan);
        catalogOf = plan;
      }
      return catalog;
    },
    config: deps.config,
    backfill: deps.backfill,
  };
}

/** Speed metrics first, then batch metrics; one entry per name. */
export function metricCatalog(plan: Plan): Map<string, MetricInfo> {
  const out = new Map<string, MetricInfo>();
  for (const m of plan.speed.metrics) {
    out.set(m.name, {
      name: m.name,
      layers: ["speed"],
      groupBy: m.groupBy,
      aggregation: m.aggregation,
      field: m.field,
      description: m.description,
      speedAggregation: m.aggregation,
    });
  }
  for (const m of plan.batch.metrics) {
    const s = out.get(m.name);
    out.set(m.name, {
      name: m.name,
      layers: s ? ["speed", "batch"] : ["batch"],
      groupBy: m.groupBy,
      aggregation: m.aggregation,
      field: m.field,
      description: m.description ?? s?.description,
      reconcileWith: m.reconcileWith,
      speedAggregation: s?.speedAggregation,
    });
  }
  return out;
}
