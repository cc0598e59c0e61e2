/**
 * The vocabulary the pipeline spec is written in: one `FieldSpec` per config
 * field (its type, default, description, example, allowed values) and the
 * cross-field `LintRule`s. The linter, the generated TypeScript types, the
 * reference doc and the JSON Schema all read these, so they cannot disagree.
 */

import type { ProblemKind } from "./problem.ts";

interface Common {
  /** One sentence for the reference doc, the JSON Schema and the types. */
  readonly description: string;
  /** Raw (YAML-shaped) default; normalised like user input. */
  readonly default?: unknown;
  /** No default and may be left out (the compiled value is then undefined). */
  readonly optional?: boolean;
  /** An example raw value for the docs. */
  readonly example?: unknown;
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

/** Metric and other SQL-reaching names. */
export const IDENTIFIER_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;
