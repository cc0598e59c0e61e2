/**
 * The reload controller: keeps the active plan (with its generation and
 * content hash) and turns each change of the pipeline file into exactly one
 * outcome, logged once and counted in `config_reloads_total{result}`:
 *
 * - `rejected`: the file does not lint; every problem is kept (file:line:col)
 *   and shown beside the active plan, which stays.
 * - `refused`: it lints, but changes restart-only keys (reload_keys.ts); one
 *   line per key says why and that a restart applies it. Nothing is applied,
 *   not even the live part of the edit.
 * - `unchanged`: it compiles to the active plan (a comment, a reformat).
 * - `applied`: the running parts take the new plan in order, each through its
 *   `apply`; the generation goes up by one.
 * - `failed`: a part could not apply it (it must throw before changing
 *   anything); the parts before it are given the active plan back, and the
 *   active plan stays.
 *
 * Reloads run one at a time, in the order they were asked for.
 */
import { formatProblem, type Problem } from "./problem.ts";
import { compileText } from "./load.ts";
import type { Env } from "./interpolate.ts";
import type { Plan } from "./plan.ts";
import { diffPlans, type KeyChange, type PlanDiff, refusalLine } from "./diff.ts";
import { planHash } from "./hash.ts";
import { readYamlTree } from "./yaml_tree.ts";
import { configTelemetry } from "./telemetry.ts";
import { log as rootLog, type Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";

export type ReloadResult = "applied" | "rejected" | "refused" | "unchanged" | "failed";

/** What asked for the reload, for the log. */
export type ReloadTrigger = "watch" | "signal" | "start" | "manual";

/** What the next generation will be, handed to each part. */
export interface NextGeneration {
  readonly generation: number;
  readonly hash: string;
}

/** A running part of the pipeline that takes a new plan. */
export interface PlanPart {
  /** For logs: `speed`, `batch`, `api`. */
  readonly name: string;
  /**
   * Applies `next`. Throws, having changed nothing, when it cannot: the
   * reload fails and the active plan stays. May return facts for the reload's
   * log line (e.g. the speed layer's switch offsets).
   */
  apply(
    next: Plan,
    diff: PlanDiff,
    generation: NextGeneration,
  ): Promise<Record<string, unknown> | void>;
}

/** A problem of a rejected or refused attempt, as `/api/v1/config` shows it. */
export interface AttemptProblem extends Problem {
  /** `file:line:col: path: message`. */
  readonly text: string;
}

/** The latest attempt that did not become the active plan (cleared by the next good one). */
export interface RejectedAttempt {
  readonly at: number;
  readonly result: "rejected" | "refused" | "failed";
  readonly trigger: ReloadTrigger;
  /** The attempted plan's hash (refused and failed attempts compiled). */
  readonly hash?: string;
  readonly problems: readonly AttemptProblem[];
  /** A failed attempt: which part and why. */
  readonly error?: string;
}

/** The latest reload, whatever its result. */
export interface LastReload {
  readonly at: number;
  readonly result: ReloadResult;
  readonly trigger: ReloadTrigger;
  /** The generation active after it. */
  readonly generation: number;
  readonly message: string;
}

export interface ConfigStatus {
  /** The pipeline file, as given ("<defaults>" when none). */
  readonly file: string;
  readonly generation: number;
  readonly hash: string;
  /** When the active plan was applied (the start, for generation 1). */
  readonly appliedAt: number;
  readonly plan: Plan;
  readonly rejected?: RejectedAttempt;
  readonly last?: LastReload;
}

/** The outcome of one `reload()`. */
export interface ReloadOutcome {
  readonly result: ReloadResult;
  readonly generation: number;
  readonly hash: string;
  readonly diff?: PlanDiff;
  readonly problems: readonly AttemptProblem[];
  readonly error?: string;
}

export interface ReloadControllerOptions {
  /** The plan the pipeline started with: generation 1. */
  readonly plan: Plan;
  /** The pipeline file as given on the command line (problems name it so). */
  readonly file: string;
  /** The running parts, in the order they apply a plan. */
  readonly parts?: readonly PlanPart[];
  /** Variables for `${VAR}`. Default: the process environment. */
  readonly env?: Env;
  /** Default: the process logger with `component: "config"`. */
  readonly log?: Logger;
  /** Default: the process registry. */
  readonly registry?: Registry;
  /** Wall clock, epoch ms. Default `Date.now`. */
  readonly clock?: () => number;
  /** Reads the file. Default `Deno.readTextFile`. */
  readonly read?: (file: string) => Promise<string>;
}

export interface ReloadController {
  /** The active plan. */
  readonly plan: Plan;
  /** Reads, checks and applies the pipeline file; resolves when done. */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome>;
  /** Adds a part (before the first reload): they apply in the order added. */
  addPart(part: PlanPart): void;
  status(): ConfigStatus;
}

function processEnv(): Env {
  try {
    return Deno.env.toObject();
  } catch {
    return {};
  }
}

const attempt = (p: Problem): AttemptProblem => ({ ...p, text: formatProblem(p) });

/**
 * Creates the controller of a running pipeline.
 *
 * @example
 * const reloads = createReloadController({ plan, file: "pipeline.yaml", parts: [speed, batch, api] });
 * Deno.addSignalListener("SIGHUP", () => void reloads.reload("signal"));
 */
export function createReloadController(opts: ReloadControllerOptions): ReloadController {
  const log = opts.log ?? rootLog.child({ component: "config" });
  const clock = opts.clock ?? Date.now;
  const read = opts.read ?? ((f: string) => Deno.readTextFile(f));
  const telemetry = configTelemetry(opts.registry);
  const parts: PlanPart[] = [...(opts.parts ?? [])];
  let active = opts.plan;
  let generation = 1;
  let hash = planHash(active);
  let appliedAt = clock();
  let rejected: RejectedAttempt | undefined;
  let last: LastReload | undefined;
  let chain: Promise<unknown> = Promise.resolve();
  telemetry.generation.set(generation);

  const finish = (
    trigger: ReloadTrigger,
    result: ReloadResult,
    message: string,
    fields: Record<string, unknown>,
    out: Omit<ReloadOutcome, "result" | "generation" | "hash">,
  ): ReloadOutcome => {
    telemetry.reloads.inc({ result });
    last = { at: clock(), result, trigger, generation, message };
    const line = { trigger, result, generation, hash, ...fields };
    if (result === "applied" || result === "unchanged") log.info(message, line);
    else if (result === "failed") log.error(message, line);
    else log.warn(message, line);
    return { result, generation, hash, ...out };
  };

  const reject = (
    trigger: ReloadTrigger,
    result: "rejected" | "refused" | "failed",
    problems: AttemptProblem[],
    extra: { hash?: string; error?: string; diff?: PlanDiff },
  ) => {
    rejected = {
      at: clock(),
      result,
      trigger,
      problems,
      ...(extra.hash ? { hash: extra.hash } : {}),
      ...(extra.error ? { error: extra.error } : {}),
    };
  };

  async function reloadOnce(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const file = opts.file;
    let text: string;
    try {
      text = await read(file);
    } catch (e) {
      const problems = [attempt({
        file,
        line: 1,
        col: 1,
        path: "",
        message: `cannot read the pipeline file: ${(e as Error).message}`,
        kind: "syntax",
      })];
      reject(trigger, "rejected", problems, {});
      return finish(
        trigger,
        "rejected",
        "pipeline file rejected: the running plan stays",
        { problems: problems.map((p) => p.text) },
        { problems },
      );
    }
    const env = opts.env ?? processEnv();
    const compiled = compileText(text, file, { env });
    if (!compiled.plan) {
      const problems = compiled.problems.map(attempt);
      reject(trigger, "rejected", problems, {});
      return finish(
        trigger,
        "rejected",
        `pipeline file rejected (${problems.length} problem${
          problems.length === 1 ? "" : "s"
        }): the running plan stays`,
        { problems: problems.map((p) => p.text) },
        { problems },
      );
    }
    const next = compiled.plan;
    const diff = diffPlans(active, next);
    const nextHash = planHash(next);
    if (diff.empty) {
      rejected = undefined;
      return finish(
        trigger,
        "unchanged",
        "pipeline file saved: the plan is unchanged, nothing to apply",
        {},
        { diff, problems: [] },
      );
    }
    if (diff.refused.length > 0) {
      const problems = diff.refused.map((c) => attempt(refusalProblem(text, file, env, c)));
      reject(trigger, "refused", problems, { hash: nextHash, diff });
      return finish(
        trigger,
        "refused",
        "pipeline reload refused: it changes keys only a restart applies; nothing of it is applied",
        { refused: problems.map((p) => p.text), attempted_hash: nextHash },
        { diff, problems },
      );
    }
    const to: NextGeneration = { generation: generation + 1, hash: nextHash };
    const applied: PlanPart[] = [];
    const facts: Record<string, unknown> = {};
    for (const part of parts) {
      try {
        const got = await part.apply(next, diff, to);
        if (got) Object.assign(facts, got);
        applied.push(part);
      } catch (e) {
        const error = `${part.name}: ${(e as Error)?.message ?? String(e)}`;
        await rollBack(applied, next);
        reject(trigger, "failed", [], { hash: nextHash, error, diff });
        return finish(
          trigger,
          "failed",
          "pipeline reload failed: the running plan stays",
          { part: part.name, error: (e as Error)?.message ?? String(e), attempted_hash: nextHash },
          { diff, problems: [], error },
        );
      }
    }
    active = next;
    generation = to.generation;
    hash = nextHash;
    appliedAt = clock();
    rejected = undefined;
    telemetry.generation.set(generation);
    return finish(
      trigger,
      "applied",
      "pipeline reloaded",
      { changes: diff.changes.map(describeChange), ...facts },
      { diff, problems: [] },
    );
  }

  /** Gives the active plan back to the parts that took the failed one. */
  async function rollBack(applied: PlanPart[], failed: Plan): Promise<void> {
    const back = diffPlans(failed, active);
    const same: NextGeneration = { generation, hash };
    for (const part of applied.reverse()) {
      try {
        await part.apply(active, back, same);
      } catch (e) {
        log.error("could not give the active plan back to a part after a failed reload", {
          part: part.name,
          error: e,
        });
      }
    }
  }

  return {
    get plan() {
      return active;
    },
    reload(trigger) {
      const run = chain.then(() => reloadOnce(trigger));
      chain = run.catch(() => {});
      return run;
    },
    addPart(part) {
      parts.push(part);
    },
    status: () => ({
      file: opts.file,
      generation,
      hash,
      appliedAt,
      plan: active,
      ...(rejected ? { rejected } : {}),
      ...(last ? { last } : {}),
    }),
  };
}

/** `speed.window: 300000 → 600000`, `speed.metrics: added x`. */
export function describeChange(c: KeyChange): string {
  if (c.from === undefined) return c.to === undefined ? c.key : `${c.key}: ${c.to}`;
  return `${c.key}: ${c.from} → ${c.to}`;
}

/** A refused change as a problem at the key's place in the file (or its nearest ancestor's). */
function refusalProblem(text: string, file: string, env: Env, c: KeyChange): Problem {
  const tree = readYamlTree(text, file, env);
  let path = c.key;
  let pos = { line: 1, col: 1 };
  for (;;) {
    const loc = tree.positions.get(path);
    if (loc) {
      pos = loc.key ?? loc.value;
      break;
    }
    const cut = path.lastIndexOf(".");
    if (cut < 0) break;
    path = path.slice(0, cut);
  }
  const line = refusalLine(c);
  return {
    file,
    line: pos.line,
    col: pos.col,
    path: c.key,
    message: line.slice(c.key.length + 2),
    kind: "invalid",
  };
}
