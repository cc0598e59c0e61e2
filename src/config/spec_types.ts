/**
 * The vocabulary the pipeline spec is written in: one `FieldSpec` per config
 * field (its type, default, description, example, allowed values, and how a
 * running pipeline takes a change of it), the cross-field `LintRule`s and the
 * `Section` that holds a top-level key's fields, rules and compile step. The
 * linter, the reload table, the generated TypeScript types, the reference doc
 * and the JSON Schema all read these, so they cannot disagree.
 */

import type { Plan } from "./plan.ts";
import type { ProblemKind } from "./problem.ts";
import type { PipelineConfig } from "./types.gen.ts";

/** A part of the running pipeline that applies a live change. */
export type ReloadPart = "speed" | "batch" | "scheduler" | "backfill" | "api";

/**
 * How a running pipeline takes a change of one key: live, by the parts listed
 * (the first is where it matters most), or only by a restart, for the reason
 * given. `read` says where the key's compiled value is in a `Plan` when the
 * plain rule does not find it (the key's path in camelCase, durations and
 * timestamps with an `Ms` suffix: `speed.allowed_lateness` is
 * `plan.speed.allowedLatenessMs`).
 */
export type Reload =
  | { readonly live: readonly ReloadPart[]; readonly read?: (plan: Plan) => unknown }
  | { readonly restart: string; readonly read?: (plan: Plan) => unknown };

/** A key applied live by `parts`. */
export function live(...parts: [ReloadPart, ...ReloadPart[]]): Reload {
  return { live: parts };
}

/** A key only a restart applies, because `reason`. */
export function restart(reason: string): Reload {
  return { restart: reason };
}

interface Common {
  /** One sentence for the reference doc, the JSON Schema and the types. */
  readonly description: string;
  /** Raw (YAML-shaped) default; normalised like user input. */
  readonly default?: unknown;
  /** No default and may be left out (the compiled value is then undefined). */
  readonly optional?: boolean;
  /** An example raw value for the docs. */
  readonly example?: unknown;
  /**
   * Required on every field that is a key of the reload table (a field that is
   * not a map, outside list items): live or restart-only, see `Reload`.
   */
  readonly reload?: Reload;
  /** Values are not shown in reload messages (passwords, tokens). */
  readonly secret?: boolean;
}

/** Free text. An empty string counts as unset, like an absent key. */
export interface StringSpec extends Common {
  readonly type: "string";
  readonly pattern?: RegExp;
  /** What `pattern` means, for messages: e.g. "a postgres:// URL". */
  readonly patternText?: string;
}

/** A name that reaches SQL or metric labels: `^[a-z][a-z0-9_]{0,62}$`. */
export interface IdentifierSpec extends Common {
  readonly type: "identifier";
}

export interface IntSpec extends Common {
  readonly type: "int";
  readonly min?: number;
  readonly max?: number;
}

export interface NumberSpec extends Common {
  readonly type: "number";
  readonly min?: number;
  readonly max?: number;
}

export interface BoolSpec extends Common {
  readonly type: "bool";
}

/** `"5m"`, `"15s"`, `"1h30m"`, `"250ms"`; compiled to milliseconds. */
export interface DurationSpec extends Common {
  readonly type: "duration";
  /** Smallest accepted value, ms. */
  readonly min?: number;
}

/** `"64MiB"`, `"512KB"` or a plain byte count; compiled to bytes. */
export interface SizeSpec extends Common {
  readonly type: "size";
  readonly min?: number;
}

/** An RFC 3339 instant, e.g. `2000-01-01T00:00:00Z`; compiled to epoch ms. */
export interface TimestampSpec extends Common {
  readonly type: "timestamp";
}

export interface EnumSpec extends Common {
  readonly type: "enum";
  readonly values: readonly string[];
  /** Why a value that is *not* allowed here is refused, when it is a known mistake. */
  readonly refused?: Readonly<Record<string, string>>;
}

/** A string or a number (filter values). */
export interface ScalarSpec extends Common {
  readonly type: "scalar";
}

/**
 * A list. A scalar string is accepted too and split on commas, so one env
 * variable can carry a list (`brokers: ${KAFKA_BROKERS}`) and `group_by: app`
 * reads as `[app]`.
 */
export interface ListSpec extends Common {
  readonly type: "list";
  readonly items: FieldSpec;
  readonly minItems?: number;
  /** Items must be distinct (scalar items only). */
  readonly unique?: boolean;
}

export interface ObjectSpec extends Common {
  readonly type: "object";
  readonly fields: Readonly<Record<string, FieldSpec>>;
  /** Name of the generated TypeScript interface (hoisted); inline when absent. */
  readonly typeName?: string;
}

export type FieldSpec =
  | StringSpec
  | IdentifierSpec
  | IntSpec
  | NumberSpec
  | BoolSpec
  | DurationSpec
  | SizeSpec
  | TimestampSpec
  | EnumSpec
  | ScalarSpec
  | ListSpec
  | ObjectSpec;

/** Reports one problem found by a cross-field rule, at a config path. */
export type Report = (path: string, message: string, kind?: ProblemKind) => void;

/** A rule over the whole (resolved) config, for what one field alone cannot say. */
export interface LintRule<C> {
  readonly id: string;
  /** For the reference doc. */
  readonly description: string;
  readonly check: (config: C, report: Report) => void;
}

/** What a compile step has beside its own section. */
export interface CompileContext {
  /** The whole resolved config, for references across sections. */
  readonly config: PipelineConfig;
  /** The folder relative paths resolve against. */
  readonly baseDir: string;
}

/**
 * One top-level section of pipeline.yaml in one place: its fields, its
 * cross-field rules (those reporting at its keys) and its compile step, which
 * turns the resolved section into its part of the frozen plan. The plan's
 * type is the compile step's return type.
 */
export interface Section<S, P> {
  readonly spec: ObjectSpec;
  readonly rules: readonly LintRule<PipelineConfig>[];
  readonly compile: (section: S, context: CompileContext) => P;
}

/** The read-only form of a compiled value (the plan is deep-frozen). */
export type Frozen<T> = T extends readonly (infer U)[] ? readonly Frozen<U>[]
  : T extends object ? { readonly [K in keyof T]: Frozen<T[K]> }
  : T;

/** Metric and other SQL-reaching names. */
export const IDENTIFIER_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;
