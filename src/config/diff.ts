/**
 * What a new plan changes against the running one, key by key, classified
 * with the table of reload_keys.ts: live changes, and restart-only ones that
 * make the whole reload refused. Metric lists are compared by name: added,
 * removed, changed (what the metric means: group key, aggregation, field,
 * filter, reconcile_with) or described (only the description). Pure.
 */
import { canonicalJson, metricDefinition } from "./hash.ts";
import type { MetricPlan, Plan } from "./plan.ts";
import { RELOAD_KEYS, type ReloadKey, type ReloadPart } from "./reload_keys.ts";

/** One changed key. */
export interface KeyChange {
  /** The pipeline.yaml key, e.g. `speed.window`. */
  readonly key: string;
  readonly live: boolean;
  /** Live: the parts that apply it. */
  readonly applies?: readonly ReloadPart[];
  /** Restart-only: why. */
  readonly reason?: string;
  /** The values, as JSON; undefined for secrets. Metric lists say what changed instead. */
  readonly from?: string;
  readonly to?: string;
}

export type BatchMetricPlan = Plan["batch"]["metrics"][number];

/** How one layer's metric list changed. */
export interface MetricChanges<M extends MetricPlan> {
  /** New names (their new definitions). */
  readonly added: readonly M[];
  /** Same name, another meaning (their new definitions). */
  readonly changed: readonly M[];
  /** Names no longer declared. */
  readonly removed: readonly string[];
  /** Only the description differs. */
  readonly described: readonly M[];
}

export interface PlanDiff {
  /** Every key whose value differs, live or not, in table order. */
  readonly changes: readonly KeyChange[];
  /** The restart-only ones among them: any makes the reload refused. */
  readonly refused: readonly KeyChange[];
  readonly speedMetrics: MetricChanges<MetricPlan>;
  readonly batchMetrics: MetricChanges<BatchMetricPlan>;
  /** The speed layer has something to switch: a live key it applies changed. */
  readonly speedSwitch: boolean;
  /** Nothing differs. */
  readonly empty: boolean;
}

function diffMetrics<M extends MetricPlan>(
  active: readonly M[],
  next: readonly M[],
): MetricChanges<M> {
  const before = new Map(active.map((m) => [m.name, m]));
  const names = new Set(next.map((m) => m.name));
  const added: M[] = [];
  const changed: M[] = [];
  const described: M[] = [];
  for (const m of next) {
    const old = before.get(m.name);
    if (!old) added.push(m);
    else if (metricDefinition(old) !== metricDefinition(m)) changed.push(m);
    else if ((old.description ?? "") !== (m.description ?? "")) described.push(m);
  }
  const removed = active.filter((m) => !names.has(m.name)).map((m) => m.name);
  return { added, changed, removed, described };
}

function metricSummary(c: MetricChanges<MetricPlan>): string {
  const part = (what: string, names: readonly string[]) =>
    names.length ? [`${what} ${names.join(", ")}`] : [];
  return [
    ...part("added", c.added.map((m) => m.name)),
    ...part("changed", c.changed.map((m) => m.name)),
    ...part("removed", c.removed),
    ...part("described", c.described.map((m) => m.name)),
  ].join("; ");
}

const isMetricList = (k: ReloadKey) => k.key === "speed.metrics" || k.key === "batch.metrics";

/**
 * Compares two plans of the same pipeline file.
 *
 * @example
 * const d = diffPlans(active, next);
 * d.refused.map(refusalLine) // ["speed.window: cannot change while the pipeline runs ..."]
 * d.speedMetrics.added.map((m) => m.name) // ["messaging_bytes_total"]
 */
export function diffPlans(active: Plan, next: Plan): PlanDiff {
  const speedMetrics = diffMetrics(active.speed.metrics, next.speed.metrics);
  const batchMetrics = diffMetrics(active.batch.metrics, next.batch.metrics);
  const changes: KeyChange[] = [];
  for (const k of RELOAD_KEYS) {
    let from: string | undefined, to: string | undefined;
    if (isMetricList(k)) {
      const m = k.key === "speed.metrics" ? speedMetrics : batchMetrics;
      const summary = metricSummary(m);
      if (summary === "") continue;
      to = summary;
    } else {
      from = canonicalJson(k.read(active) ?? null);
      to = canonicalJson(k.read(next) ?? null);
      if (from === to) continue;
      if (k.secret) from = to = undefined;
    }
    changes.push({
      key: k.key,
      live: k.live !== undefined,
      ...(k.live ? { applies: k.live } : { reason: k.restart }),
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
    });
  }
  const definitions = (m: MetricChanges<MetricPlan>) =>
    m.added.length + m.changed.length + m.removed.length > 0;
  const speedSwitch = definitions(speedMetrics) ||
    changes.some((c) => c.live && c.applies?.[0] === "speed" && c.key !== "speed.metrics");
  return {
    changes,
    refused: changes.filter((c) => !c.live),
    speedMetrics,
    batchMetrics,
    speedSwitch,
    empty: changes.length === 0,
  };
}

/**
 * The one line a refused change is reported with: the key, what changed
 * (unless secret), why a running pipeline cannot take it, and that a restart
 * applies it.
 *
 * @example refusalLine(change) // 'speed.window: cannot change while the pipeline runs (300000 → 600000): every stored window ... depend on the window length; a restart applies it'
 */
export function refusalLine(c: KeyChange): string {
  const values = c.from !== undefined && c.to !== undefined ? ` (${c.from} → ${c.to})` : "";
  return `${c.key}: cannot change while the pipeline runs${values}: ${c.reason}; a restart applies it`;
}
