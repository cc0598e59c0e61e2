/**
 * Identities of what runs: the content hash of a plan, shown with its
 * generation in `/api/v1/config` and `/ready`, and the definition (and hash)
 * of one metric, which decides whether a reload changed what a metric means
 * and names the history a backfill recomputes.
 *
 * The hash is of the compiled plan, not of the file's text: a comment, a
 * reordered map or `5m` written as `300s` change nothing that runs and keep
 * the hash, so saving such an edit reloads to "unchanged". Secrets (URL
 * passwords, the API token) are masked before hashing, so the hash, which the
 * API shows, says nothing about them; those keys are restart-only anyway.
 */
import { createHash } from "node:crypto";
import type { MetricPlan, Plan } from "./plan.ts";
import { redactPlan } from "./redact.ts";

/** JSON with object keys sorted at every level and undefined members left out. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = sortKeys(x);
    }
    return out;
  }
  return v;
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * The content hash of a plan: SHA-256 (hex) of its canonical JSON, secrets
 * masked.
 *
 * @example planHash(planFromYaml("")) === planHash(planFromYaml("# a comment\n")) // true
 */
export function planHash(plan: Plan): string {
  return sha256(canonicalJson(redactPlan(plan)));
}

/** A metric of either layer, as a definition compares it. */
export type AnyMetricPlan = MetricPlan & { readonly reconcileWith?: string };

/**
 * What a metric means, canonically: group key, aggregation, aggregated field
 * (not for `count`, which ignores it), filter (value lists as sorted strings,
 * which is how filters compare values) and, for batch metrics, the speed
 * metric it reconciles with. The description is not part of it.
 */
export function metricDefinition(m: AnyMetricPlan): string {
  const values = (lists: Readonly<Record<string, readonly (string | number)[] | undefined>>) =>
    Object.fromEntries(
      Object.entries(lists).map(([f, vs]) => [f, [...new Set((vs ?? []).map(String))].sort()]),
    );
  return canonicalJson({
    groupBy: m.groupBy,
    aggregation: m.aggregation,
    field: m.aggregation === "count" ? undefined : m.field,
    filter: m.filter
      ? {
        in: m.filter.in ? values(m.filter.in) : undefined,
        notIn: m.filter.notIn ? values(m.filter.notIn) : undefined,
      }
      : undefined,
    reconcileWith: m.reconcileWith,
  });
}

/** SHA-256 (hex) of `metricDefinition(m)`. */
export function definitionHash(m: AnyMetricPlan): string {
  return sha256(metricDefinition(m));
}
