/**
 * A problem found in a pipeline file, and the error that carries all of them.
 * The linter never stops at the first problem: an operator fixes a file in one
 * pass, so `ConfigError` lists every problem, one per line.
 */

import { UserError } from "../errors.ts";

export type ProblemKind =
  | "unknown_key"
  | "missing"
  | "type"
  | "invalid"
  | "env"
  | "syntax"
  | "reference";

export interface Problem {
  /** File as given by the caller ("<defaults>" for the built-in pipeline). */
  readonly file: string;
  /** 1-based line. */
  readonly line: number;
  /** 1-based column. */
  readonly col: number;
  /** Config path, e.g. `speed.metrics[2].group_by` ("" for the whole file). */
  readonly path: string;
  readonly message: string;
  readonly kind: ProblemKind;
}

/**
 * One line an editor can jump to: `file:line:col: path: message`.
 *
 * @example formatProblem(p) // "pipeline.yaml:12:7: speed.window: expected a duration like \"5m\", got \"5 minutes\""
 */
export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.path === "" ? "(root)" : p.path}: ${p.message}`;
}

/** Orders problems by position so the output reads top to bottom. */
export function sortProblems(problems: readonly Problem[]): Problem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.col - b.col);
}

/** A pipeline file that cannot be compiled; `problems` holds every reason. */
export class ConfigError extends UserError {
  readonly problems: readonly Problem[];
  constructor(problems: readonly Problem[]) {
    const n = problems.length;
    super(
      `invalid pipeline config (${n} problem${n === 1 ? "" : "s"}):\n` +
        problems.map(formatProblem).join("\n"),
    );
    this.name = "ConfigError";
    this.problems = problems;
  }
}
