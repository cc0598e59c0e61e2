/**
 * What a reload or a start does about the history of metrics: the switch
 * plan handed to the speed layer (which speed metrics get recomputed below
 * the switch), the definitions recorded once a plan is applied, and the
 * batch hours queued for new or changed batch metrics. At start, the plan is
 * compared with the definitions recorded by the last run: an edit made while
 * the pipeline was down is a switch at the stored offsets, exactly where the
 * speed layer is about to resume.
 */
import type { PlanDiff } from "../config/diff.ts";
import { definitionHash, metricDefinition } from "../config/hash.ts";
import type { MetricPlan, Plan } from "../config/plan.ts";
import type { Db, Queryable } from "../db/db.ts";
import type { Logger } from "../log.ts";
import * as store from "./store.ts";
import type { RecordedDefinition } from "./store.ts";
import { switchAtStoredOffsets, type SwitchPlan } from "./switch.ts";

/** How a layer's declared metrics differ from the recorded definitions. */
export interface DefinitionChanges<M extends MetricPlan> {
  readonly added: readonly M[];
  readonly changed: readonly M[];
  readonly removed: readonly string[];
}

/**
 * Compares a layer's metrics with what was recorded. Nothing recorded at all
 * (the first start, or the first since migration 010) adopts every metric;
 * a metric recorded without a hash (adopted by the migration) is adopted too.
 */
export function compareDefinitions<M extends MetricPlan>(
  recorded: readonly RecordedDefinition[],
  metrics: readonly M[],
): DefinitionChanges<M> {
  if (recorded.length === 0) return { added: [], changed: [], removed: [] };
  const by = new Map(recorded.map((r) => [r.name, r]));
  const names = new Set(metrics.map((m) => m.name));
  const added: M[] = [];
  const changed: M[] = [];
  for (const m of metrics) {
    const r = by.get(m.name);
    if (!r) added.push(m);
    else if (r.hash !== undefined && r.hash !== definitionHash(m)) changed.push(m);
  }
  return { added, changed, removed: recorded.filter((r) => !names.has(r.name)).map((r) => r.name) };
}

const defs = (metrics: readonly MetricPlan[]) =>
  metrics.map((m) => ({ name: m.name, hash: definitionHash(m), definition: metricDefinition(m) }));

/** The switch a reload asks of the speed layer. */
export function switchPlanOf(
  topic: string,
  next: Plan,
  diff: PlanDiff,
  nowMs: number,
  generation: number,
): SwitchPlan {
  return {
    topic,
    next,
    jobs: [
      ...diff.speedMetrics.added.map((metric) => ({ metric, reason: "added" as const })),
      ...diff.speedMetrics.changed.map((metric) => ({ metric, reason: "changed" as const })),
    ],
    removed: diff.speedMetrics.removed,
    nowMs,
    generation,
  };
}

/**
 * Records a plan as applied (its definitions; the speed ones only when the
 * speed layer runs) and queues the batch hours to run again: those already
 * batched, within `batch.backfill_hours`, when a batch metric was added or
 * changed, or a speed metric one of them reconciles with. Returns the hours.
 */
export async function recordApplied(
  tx: Queryable,
  topic: string,
  plan: Plan,
  changes: {
    speed: DefinitionChanges<MetricPlan>;
    batch: DefinitionChanges<MetricPlan>;
    speedRecorded: boolean;
  },
  nowMs: number,
): Promise<number[]> {
  if (changes.speedRecorded) {
    await store.writeDefinitions(tx, topic, "speed", defs(plan.speed.metrics));
  }
  await store.writeDefinitions(tx, topic, "batch", defs(plan.batch.metrics));
  const reconciled = new Set(
    plan.batch.metrics.map((m) => m.reconcileWith ?? m.name),
  );
  const why = [
    ...changes.batch.added.map((m) => m.name),
    ...changes.batch.changed.map((m) => m.name),
    ...[...changes.speed.added, ...changes.speed.changed].filter((m) => reconciled.has(m.name))
      .map((m) => `${m.name} (speed)`),
  ];
  if (why.length === 0) return [];
  const hours = store.withinHours(
    await store.batchedHours(tx, -Infinity),
    nowMs,
    plan.batch.backfillHours,
  );
  await store.queueHours(tx, topic, hours, why);
  return hours;
}

/** What `reconcileAtStart` found and did. */
export interface StartReconciliation {
  readonly speed: DefinitionChanges<MetricPlan>;
  readonly batch: DefinitionChanges<MetricPlan>;
  /** Switch offsets recorded for the speed metrics added or changed while down. */
  readonly switchOffsets: ReadonlyMap<number, number>;
  readonly queuedHours: number;
}

/**
 * Before the speed layer starts: handles the metrics edited while the
 * pipeline was down like a reload, switching at the stored offsets.
 */
export async function reconcileAtStart(
  db: Db,
  topic: string,
  plan: Plan,
  log: Logger,
  nowMs = Date.now(),
  /** The plan's generation at this start (src/runtime/generation.ts), recorded on its backfill rows. */
  generation = 1,
): Promise<StartReconciliation> {
  const recorded = await store.readDefinitions(db, topic);
  const speedEnabled = plan.speed.enabled;
  const speed = speedEnabled
    ? compareDefinitions(recorded.filter((r) => r.layer === "speed"), plan.speed.metrics)
    : { added: [], changed: [], removed: [] };
  const batch = compareDefinitions(recorded.filter((r) => r.layer === "batch"), plan.batch.metrics);
  const changes = { speed, batch, speedRecorded: speedEnabled };
  const edited = speed.added.length + speed.changed.length + speed.removed.length > 0;
  let switchOffsets = new Map<number, number>();
  let hours: number[] = [];
  if (edited) {
    const sp: SwitchPlan = {
      topic,
      next: plan,
      jobs: [
        ...speed.added.map((metric) => ({ metric, reason: "added" as const })),
        ...speed.changed.map((metric) => ({ metric, reason: "changed" as const })),
      ],
      removed: speed.removed,
      nowMs,
      generation,
    };
    switchOffsets = await switchAtStoredOffsets(db, sp, async (tx) => {
      hours = await recordApplied(tx, topic, plan, changes, nowMs);
    });
  } else {
    hours = await db.transaction((tx) => recordApplied(tx, topic, plan, changes, nowMs));
  }
  const names = (c: DefinitionChanges<MetricPlan>) => ({
    added: c.added.map((m) => m.name),
    changed: c.changed.map((m) => m.name),
    removed: c.removed,
  });
  if (edited || batch.added.length + batch.changed.length + batch.removed.length > 0) {
    log.info("metrics edited while the pipeline was down: handled like a reload", {
      speed: names(speed),
      batch: names(batch),
      switch_offsets: Object.fromEntries(switchOffsets),
      batch_hours_queued: hours.length,
    });
  }
  return { speed, batch, switchOffsets, queuedHours: hours.length };
}
