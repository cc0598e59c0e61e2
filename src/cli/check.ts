/**
 * `deno task check [file]`: lints a pipeline file and prints every problem as
 * `file:line:col: path: message` (the format editors and CI annotate), or a
 * one-line summary of what the file declares when it is valid.
 */

import { basename } from "node:path";
import { analyzeYaml } from "../config/lint.ts";
import { DEFAULT_PATH } from "../config/load.ts";
import { formatProblem } from "../config/problem.ts";
import type { Env } from "../config/interpolate.ts";

export interface CheckIo {
  /** Where results go; default console.log. */
  readonly out?: (line: string) => void;
  /** Where usage errors go; default console.error. */
  readonly err?: (line: string) => void;
  /** Variables for `${VAR}`; default the process environment. */
  readonly env?: Env;
}

/**
 * Checks `args[0]` (default `pipeline.yaml`); returns the exit code: 0 valid,
 * 1 problems, 2 usage error (unreadable file, too many arguments).
 *
 * @example await main(["pipeline.yaml"]) // prints "pipeline.yaml: ok (3 speed metrics, 3 batch metrics)"
 */
export async function main(args: string[], io: CheckIo = {}): Promise<number> {
  const out = io.out ?? console.log;
  const err = io.err ?? console.error;
  if (args.includes("-h") || args.includes("--help")) {
    out("usage: deno task check [pipeline.yaml]\nLints a pipeline file and lists every problem.");
    return 0;
  }
  if (args.length > 1) {
    err(`error: check takes one file, got ${args.length}: ${args.join(" ")}`);
    return 2;
  }
  const file = args[0] ?? DEFAULT_PATH;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    err(`error: cannot read "${file}": ${(e as Error).message}`);
    return 2;
  }
  let env = io.env;
  if (env === undefined) {
    try {
      env = Deno.env.toObject();
    } catch {
      env = {};
    }
  }
  const { config, problems } = analyzeYaml(text, file, env);
  if (problems.length > 0) {
    for (const p of problems) out(formatProblem(p));
    out(`${problems.length} problem${problems.length === 1 ? "" : "s"} in ${file}`);
    return 1;
  }
  const n = (k: number, what: string) => `${k} ${what}${k === 1 ? "" : "s"}`;
  out(
    `${args[0] ?? basename(file)}: ok (${n(config.speed.metrics.length, "speed metric")}, ${
      n(config.batch.metrics.length, "batch metric")
    })`,
  );
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
