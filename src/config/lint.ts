/**
 * The linter: checks the plain YAML tree against the spec, field by field,
 * then runs the cross-field rules, and returns every problem at once with its
 * position. Along the way it resolves the config (defaults applied, units
 * converted to ms/bytes) so the compiler never re-reads raw values.
 */

import { PIPELINE_SPEC, RULES } from "./spec.ts";
import type {
  DurationSpec,
  EnumSpec,
  FieldSpec,
  IntSpec,
  NumberSpec,
  ObjectSpec,
  SizeSpec,
} from "./spec_types.ts";
import { IDENTIFIER_PATTERN } from "./spec_types.ts";
import type { PipelineConfig } from "./types.gen.ts";
import type { Env } from "./interpolate.ts";
import { type Problem, type ProblemKind, sortProblems } from "./problem.ts";
import { parseDuration, parseSize } from "./units.ts";
import { BAD, childPath, type Position, readYamlTree, type YamlTree } from "./yaml_tree.ts";

export interface LintResult {
  /** Resolved config; complete only when `problems` is empty. */
  readonly config: PipelineConfig;
  readonly problems: readonly Problem[];
}

/** Thrown when a default declared in the spec does not pass the spec itself. */
class SpecDefaultError extends Error {
  override name = "SpecDefaultError";
}

/**
 * Every problem in `text`, sorted by position; empty when the file is valid.
 *
 * @example lintYaml("speed:\n  windw: 5m\n", "pipeline.yaml", {}) // [{ line: 2, col: 3, kind: "unknown_key", ... }]
 */
export function lintYaml(text: string, file: string, env: Env = Deno.env.toObject()): Problem[] {
  return [...analyzeYaml(text, file, env).problems];
}

/** Lints `text` and returns the resolved config with the problems. */
export function analyzeYaml(text: string, file: string, env: Env): LintResult {
  const tree = readYamlTree(text, file, env);
  const checker = new Checker(tree, file);
  const root = tree.value === null ? {} : tree.value;
  const config = checker.check(PIPELINE_SPEC, root, "") as PipelineConfig;
  if (tree.problems.every((p) => p.kind !== "syntax")) {
    for (const rule of RULES) {
      try {
        rule.check(config, (path, message, kind = "invalid") => checker.add(path, message, kind));
      } catch (e) {
        // A rule may trip over a field left undefined by an earlier problem; that
        // problem is already reported. On a clean config it is a bug: rethrow.
        if (checker.problems.length === 0 && tree.problems.length === 0) throw e;
      }
    }
  }
  return { config, problems: sortProblems([...tree.problems, ...checker.problems]) };
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return "a list";
  if (v !== null && typeof v === "object") return "a map";
  if (typeof v === "string") return JSON.stringify(v);
  return String(v);
}

/** Reports a bad value at the field being checked; returns the value to go on with. */
type Bad = (message: string, kind?: ProblemKind) => unknown;

function checkIdentifier(v: unknown, bad: Bad): unknown {
  if (typeof v !== "string") {
    return bad(`expected an identifier (a string), got ${describe(v)}`, "type");
  }
  if (!IDENTIFIER_PATTERN.test(v)) {
    return bad(
      `invalid identifier ${describe(v)} (expected a lowercase letter, then up to 62 ` +
        `lowercase letters, digits or "_": ${IDENTIFIER_PATTERN.source})`,
    );
  }
  return v;
}

/** `text`: the value came from `${VAR}` (or a default), so "42" may stand for 42. */
function checkNumber(spec: IntSpec | NumberSpec, v: unknown, text: boolean, bad: Bad): unknown {
  let n = v;
  if (typeof v === "string" && text && /^-?\d+(\.\d+)?$/.test(v.trim())) n = Number(v);
  const what = spec.type === "int" ? "an integer" : "a number";
  if (typeof n !== "number" || !Number.isFinite(n)) {
    return bad(`expected ${what}, got ${describe(v)}`, "type");
  }
  if (spec.type === "int" && !Number.isSafeInteger(n)) {
    return bad(`expected ${what}, got ${describe(v)}`, "type");
  }
  if (spec.min !== undefined && n < spec.min) {
    return bad(`must be at least ${spec.min}, got ${n}`);
  }
  if (spec.max !== undefined && n > spec.max) {
    return bad(`must be at most ${spec.max}, got ${n}`);
  }
  return n;
}

function checkDuration(spec: DurationSpec, v: unknown, bad: Bad): unknown {
  const ms = typeof v === "string" ? parseDuration(v) : v === 0 ? 0 : undefined;
  if (ms === undefined) {
    const hint = typeof v === "number" ? " (a bare number has no unit)" : "";
    return bad(
      `expected a duration like "250ms", "15s", "5m" or "1h"${hint}, got ${describe(v)}`,
      typeof v === "string" || typeof v === "number" ? "invalid" : "type",
    );
  }
  if (spec.min !== undefined && ms < spec.min) {
    return bad(`must be at least ${spec.min}ms, got ${describe(v)}`);
  }
  return ms;
}

function checkSize(spec: SizeSpec, v: unknown, bad: Bad): unknown {
  const bytes = typeof v === "string" || typeof v === "number" ? parseSize(v) : undefined;
  if (bytes === undefined) {
    return bad(
      `expected a size like "64KiB", "64MiB" or a byte count, got ${describe(v)}`,
      typeof v === "object" ? "type" : "invalid",
    );
  }
  if (spec.min !== undefined && bytes < spec.min) {
    return bad(`must be at least ${spec.min} bytes, got ${describe(v)}`);
  }
  return bytes;
}

function checkTimestamp(v: unknown, bad: Bad): unknown {
  const ok = typeof v === "string" &&
    /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d)$/.test(v);
  const ms = ok ? Date.parse(v as string) : NaN;
  if (Number.isNaN(ms)) {
    return bad(`expected an RFC 3339 time like "2000-01-01T00:00:00Z", got ${describe(v)}`);
  }
  return ms;
}

function checkEnum(spec: EnumSpec, v: unknown, bad: Bad): unknown {
  if (typeof v !== "string") {
    return bad(`expected one of: ${spec.values.join(", ")}; got ${describe(v)}`, "type");
  }
  if (!spec.values.includes(v)) {
    const why = spec.refused?.[v];
    return bad(
      why
        ? `${why} (expected one of: ${spec.values.join(", ")})`
        : `unknown value ${describe(v)} (expected one of: ${spec.values.join(", ")})`,
    );
  }
  return v;
}

class Checker {
  readonly problems: Problem[] = [];
  #inDefault = false;
  constructor(private readonly tree: YamlTree, private readonly file: string) {}

  /** Position of `path`, or of its nearest ancestor present in the file. */
  position(path: string, preferKey = false): Position {
    let p = path;
    for (;;) {
      const loc = this.tree.positions.get(p);
      if (loc) return (preferKey ? loc.key : undefined) ?? loc.value;
      if (p === "") return { line: 1, col: 1 };
      const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      p = cut < 0 ? "" : p.slice(0, cut);
    }
  }

  add(path: string, message: string, kind: ProblemKind, preferKey = false): void {
    if (this.#inDefault) throw new SpecDefaultError(`spec default at ${path}: ${message}`);
    const from = kind === "missing" ? undefined : this.defaultOrigin(path);
    if (from !== undefined) {
      message += ` (from the built-in defaults: ${from} is not set in the file)`;
    }
    this.problems.push({ file: this.file, ...this.position(path, preferKey), path, message, kind });
  }

  /** The outermost absent path above `path` when its value came from a default. */
  defaultOrigin(path: string): string | undefined {
    let origin: string | undefined;
    let p = path;
    while (p !== "" && !this.tree.positions.has(p)) {
      origin = p;
      const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
      p = cut < 0 ? "" : p.slice(0, cut);
    }
    // Items split from a comma-separated string have no position of their own.
    if (origin !== undefined && /\[\d+\]$/.test(origin)) return undefined;
    return origin;
  }

  /** Value of an absent field: its default, or undefined (reporting it if required). */
  absent(spec: FieldSpec, path: string): unknown {
    if (spec.default !== undefined) {
      const was = this.#inDefault;
      this.#inDefault = true;
      try {
        return this.check(spec, spec.default, path);
      } finally {
        this.#inDefault = was;
      }
    }
    if (spec.type === "object" && !spec.optional) return this.check(spec, {}, path);
    if (!spec.optional) {
      const key = path.slice(path.lastIndexOf(".") + 1);
      this.add(path, `missing required field "${key}"`, "missing", true);
    }
    return undefined;
  }

  /** Fallback for a present but bad value: the default, so later rules still run. */
  fallback(spec: FieldSpec, path: string): unknown {
    if (spec.default === undefined && spec.type !== "object") return undefined;
    const n = this.problems.length;
    const v = this.absent(spec, path);
    this.problems.length = n;
    return v;
  }

  check(spec: FieldSpec, v: unknown, path: string): unknown {
    if (v === BAD) return this.fallback(spec, path);
    if (v === null || v === undefined || v === "") return this.absent(spec, path);
    const text = this.tree.interpolated.has(path) || this.#inDefault;
    const bad: Bad = (message, kind = "invalid") => {
      this.add(path, message, kind);
      return this.fallback(spec, path);
    };
    switch (spec.type) {
      case "string": {
        if (typeof v === "object") return bad(`expected a string, got ${describe(v)}`, "type");
        const s = String(v);
        if (spec.pattern && !spec.pattern.test(s)) {
          return bad(`expected ${spec.patternText ?? spec.pattern.source}, got ${describe(s)}`);
        }
        return s;
      }
      case "identifier":
        return checkIdentifier(v, bad);
      case "int":
      case "number":
        return checkNumber(spec, v, text, bad);
      case "bool": {
        if (typeof v === "boolean") return v;
        if (typeof v === "string" && text && /^(true|false)$/i.test(v.trim())) {
          return v.trim().toLowerCase() === "true";
        }
        return bad(`expected true or false, got ${describe(v)}`, "type");
      }
      case "duration":
        return checkDuration(spec, v, bad);
      case "size":
        return checkSize(spec, v, bad);
      case "timestamp":
        return checkTimestamp(v, bad);
      case "enum":
        return checkEnum(spec, v, bad);
      case "scalar": {
        if (typeof v === "string" || typeof v === "number") return v;
        return bad(`expected a string or a number, got ${describe(v)}`, "type");
      }
      case "list":
        return this.checkList(spec, v, path, bad);
      case "object":
        return this.checkObject(spec, v, path, bad);
    }
  }

  checkList(
    spec: FieldSpec & { type: "list" },
    v: unknown,
    path: string,
    bad: Bad,
  ): unknown {
    let items: unknown[];
    if (Array.isArray(v)) items = v;
    else if (typeof v === "string") {
      items = v.split(",").map((s) => s.trim()).filter((s) => s !== "");
    } else return bad(`expected a list, got ${describe(v)}`, "type");
    if (spec.minItems !== undefined && items.length < spec.minItems) {
      return bad(`expected at least ${spec.minItems} item${spec.minItems === 1 ? "" : "s"}`);
    }
    const out = items.map((item, i) => this.check(spec.items, item, childPath(path, i)));
    if (spec.unique) {
      const seen = new Set<unknown>();
      out.forEach((x, i) => {
        if (x === undefined) return;
        if (seen.has(x)) this.add(childPath(path, i), `duplicate item ${describe(x)}`, "invalid");
        seen.add(x);
      });
    }
    return out;
  }

  checkObject(
    spec: ObjectSpec,
    v: unknown,
    path: string,
    bad: Bad,
  ): unknown {
    if (typeof v !== "object" || v === null || Array.isArray(v)) {
      return bad(`expected a map, got ${describe(v)}`, "type");
    }
    const raw = v as Record<string, unknown>;
    const names = Object.keys(spec.fields);
    for (const key of Object.keys(raw)) {
      if (!(key in spec.fields)) {
        this.add(
          childPath(path, key),
          `unknown key ${JSON.stringify(key)} (expected one of: ${names.join(", ")})`,
          "unknown_key",
          true,
        );
      }
    }
    const out: Record<string, unknown> = {};
    for (const [name, field] of Object.entries(spec.fields)) {
      const value = this.check(field, raw[name], childPath(path, name));
      if (value !== undefined) out[name] = value;
    }
    return out;
  }
}
