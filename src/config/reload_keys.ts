/**
 * Which pipeline.yaml keys a running pipeline applies live and which only a
 * restart applies, derived from the spec: every key (a field that is not a
 * map; a list is one key, its items are not keys) carries its `reload`
 * marker in its section file, and this walks the spec in order and collects
 * them, with how to read each key's value from a `Plan`. `diffPlans`
 * (diff.ts) and the reference doc read the table.
 */
import type { Plan } from "./plan.ts";
import { PIPELINE_SPEC } from "./spec.ts";
import type { FieldSpec, ObjectSpec, ReloadPart } from "./spec_types.ts";

export type { ReloadPart };

export interface ReloadKey {
  /** The key as written in pipeline.yaml, e.g. `speed.window`. */
  readonly key: string;
  /** Its compiled value. */
  readonly read: (plan: Plan) => unknown;
  /** Live: the parts that apply it (the first is where it matters most). */
  readonly live?: readonly ReloadPart[];
  /** Restart-only: why the running pipeline cannot take it. */
  readonly restart?: string;
  /** Values are not shown in messages (passwords, tokens). */
  readonly secret?: boolean;
}

const camel = (name: string) => name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * Where a key's value is in the plan by the compile steps' naming: its path in
 * camelCase, with durations and timestamps (compiled to ms) named `…Ms`.
 *
 * @example planPath("speed.allowed_lateness", { type: "duration", … }) // ["speed", "allowedLatenessMs"]
 */
export function planPath(key: string, field: FieldSpec): string[] {
  const path = key.split(".").map(camel);
  if (field.type === "duration" || field.type === "timestamp") path[path.length - 1] += "Ms";
  return path;
}

function readAt(path: readonly string[]): (plan: Plan) => unknown {
  return (plan) => {
    let v: unknown = plan;
    for (const step of path) v = (v as Record<string, unknown> | undefined)?.[step];
    return v;
  };
}

/**
 * The reload table of `spec`: its keys in order, each with its marker. Throws
 * when a key has none (a section file that forgot to say how it reloads).
 */
export function reloadKeysOf(spec: ObjectSpec): ReloadKey[] {
  return collect(spec, "", []);
}

function collect(spec: ObjectSpec, prefix: string, out: ReloadKey[]): ReloadKey[] {
  for (const [name, field] of Object.entries(spec.fields)) {
    const key = prefix + name;
    if (field.type === "object") {
      collect(field, `${key}.`, out);
      continue;
    }
    const r = field.reload;
    // A programming error in a section file: every key must say how it reloads.
    if (!r) throw new Error(`spec field "${key}" has no reload marker: add live(…) or restart(…)`);
    out.push({
      key,
      read: r.read ?? readAt(planPath(key, field)),
      ...("live" in r ? { live: r.live } : { restart: r.restart }),
      ...(field.secret ? { secret: true } : {}),
    });
  }
  return out;
}

/** Every key of the spec, in spec order. Metric lists are one key each. */
export const RELOAD_KEYS: readonly ReloadKey[] = reloadKeysOf(PIPELINE_SPEC);
