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
 * Reloads run one at a time, in the order they were asked for. The
 * controller belongs to the runtime (as Vector's topology controller): the
 * config folder only computes the difference (`diffPlans`); which part takes
 * what, in which order, is decided here and in parts.ts.
 */
import {
  compileText,
  configTelemetry,
  diffPlans,
  type Env,
  formatProblem,
  type KeyChange,
  type Plan,
  type PlanDiff,
  planHash,
  type Problem,
  readYamlTree,
  refusalLine,
} from "../config/mod.ts";
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
  /** When the active plan's generation was first applied (maybe before this process started). */
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
  /** The plan the pipeline started with. */
  readonly plan: Plan;
  /**
   * Its generation (generation.ts keeps it across restarts: the same plan
   * keeps its number, a changed one gets the next). Default 1.
   */
  readonly generation?: number;
  /** When that generation was first applied, epoch ms. Default: now. */
  readonly appliedAt?: number;
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
  return new Controller(opts);
}

/** What `finish` adds to an outcome besides its result, generation and hash. */
type OutcomeRest = Omit<ReloadOutcome, "result" | "generation" | "hash">;

class Controller implements ReloadController {
  readonly #opts: ReloadControllerOptions;
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #telemetry: ReturnType<typeof configTelemetry>;
  readonly #parts: PlanPart[];
  #active: Plan;
  #generation: number;
  #hash: string;
  #appliedAt: number;
  #rejected?: RejectedAttempt;
  #last?: LastReload;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(opts: ReloadControllerOptions) {
    this.#opts = opts;
    this.#log = opts.log ?? rootLog.child({ component: "config" });
    this.#clock = opts.clock ?? Date.now;
    this.#telemetry = configTelemetry(opts.registry);
    this.#parts = [...(opts.parts ?? [])];
    this.#active = opts.plan;
    this.#generation = opts.generation ?? 1;
    this.#hash = planHash(opts.plan);
    this.#appliedAt = opts.appliedAt ?? this.#clock();
    this.#telemetry.generation.set(this.#generation);
  }

  get plan(): Plan {
    return this.#active;
  }

  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const run = this.#chain.then(() => this.#reloadOnce(trigger));
    this.#chain = run.catch(() => {});
    return run;
  }

  addPart(part: PlanPart): void {
    this.#parts.push(part);
  }

  status(): ConfigStatus {
    return {
      file: this.#opts.file,
      generation: this.#generation,
      hash: this.#hash,
      appliedAt: this.#appliedAt,
      plan: this.#active,
      ...(this.#rejected ? { rejected: this.#rejected } : {}),
      ...(this.#last ? { last: this.#last } : {}),
    };
  }

  /** Read, compile, compare, then apply: each step may end the reload with its outcome. */
  async #reloadOnce(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const file = this.#opts.file;
    let text: string;
    try {
      text = await (this.#opts.read ?? ((f: string) => Deno.readTextFile(f)))(file);
    } catch (e) {
      const message = `cannot read the pipeline file: ${(e as Error).message}`;
      const problem = { file, line: 1, col: 1, path: "", message, kind: "syntax" as const };
      return this.#rejectedFile(trigger, [attempt(problem)], "pipeline file rejected");
    }
    const env = this.#opts.env ?? processEnv();
    const compiled = compileText(text, file, { env });
    if (!compiled.plan) {
      const problems = compiled.problems.map(attempt);
      const n = problems.length;
      const what = `pipeline file rejected (${n} problem${n === 1 ? "" : "s"})`;
      return this.#rejectedFile(trigger, problems, what);
    }
    const next = compiled.plan;
    const diff = diffPlans(this.#active, next);
    const nextHash = planHash(next);
    if (diff.empty) {
      this.#rejected = undefined;
      const message = "pipeline file saved: the plan is unchanged, nothing to apply";
      return this.#finish(trigger, "unchanged", message, {}, { diff, problems: [] });
    }
    if (diff.refused.length > 0) {
      const problems = diff.refused.map((c) => attempt(refusalProblem(text, file, env, c)));
      this.#reject(trigger, "refused", problems, { hash: nextHash });
      return this.#finish(
        trigger,
        "refused",
        "pipeline reload refused: it changes keys only a restart applies; nothing of it is applied",
        { refused: problems.map((p) => p.text), attempted_hash: nextHash },
        { diff, problems },
      );
    }
    return await this.#apply(trigger, next, diff, nextHash);
  }

  /** The parts take `next` in order; the first that fails has the others given the active plan back. */
  async #apply(
    trigger: ReloadTrigger,
    next: Plan,
    diff: PlanDiff,
    nextHash: string,
  ): Promise<ReloadOutcome> {
    const to: NextGeneration = { generation: this.#generation + 1, hash: nextHash };
    const applied: PlanPart[] = [];
    const facts: Record<string, unknown> = {};
    for (const part of this.#parts) {
      try {
        const got = await part.apply(next, diff, to);
        if (got) Object.assign(facts, got);
        applied.push(part);
      } catch (e) {
        const message = (e as Error)?.message ?? String(e);
        const error = `${part.name}: ${message}`;
        await this.#rollBack(applied, next);
        this.#reject(trigger, "failed", [], { hash: nextHash, error });
        return this.#finish(
          trigger,
          "failed",
          "pipeline reload failed: the running plan stays",
          { part: part.name, error: message, attempted_hash: nextHash },
          { diff, problems: [], error },
        );
      }
    }
    this.#active = next;
    this.#generation = to.generation;
    this.#hash = nextHash;
    this.#appliedAt = this.#clock();
    this.#rejected = undefined;
    this.#telemetry.generation.set(this.#generation);
    const fields = { changes: diff.changes.map(describeChange), ...facts };
    return this.#finish(trigger, "applied", "pipeline reloaded", fields, { diff, problems: [] });
  }

  /** Gives the active plan back to the parts that took the failed one. */
  async #rollBack(applied: PlanPart[], failed: Plan): Promise<void> {
    const back = diffPlans(failed, this.#active);
    const same: NextGeneration = { generation: this.#generation, hash: this.#hash };
    for (const part of applied.reverse()) {
      try {
        await part.apply(this.#active, back, same);
      } catch (e) {
        this.#log.error("could not give the active plan back to a part after a failed reload", {
          part: part.name,
          error: e,
        });
      }
    }
  }

  #rejectedFile(trigger: ReloadTrigger, problems: AttemptProblem[], what: string) {
    this.#reject(trigger, "rejected", problems, {});
    const fields = { problems: problems.map((p) => p.text) };
    return this.#finish(trigger, "rejected", `${what}: the running plan stays`, fields, {
      problems,
    });
  }

  #reject(
    trigger: ReloadTrigger,
    result: "rejected" | "refused" | "failed",
    problems: AttemptProblem[],
    extra: { hash?: string; error?: string },
  ): void {
    this.#rejected = {
      at: this.#clock(),
      result,
      trigger,
      problems,
      ...(extra.hash ? { hash: extra.hash } : {}),
      ...(extra.error ? { error: extra.error } : {}),
    };
  }

  /** The one log line and count of a reload, and its outcome. */
  #finish(
    trigger: ReloadTrigger,
    result: ReloadResult,
    message: string,
    fields: Record<string, unknown>,
    out: OutcomeRest,
  ): ReloadOutcome {
    const { generation, hash } = { generation: this.#generation, hash: this.#hash };
    this.#telemetry.reloads.inc({ result });
    this.#last = { at: this.#clock(), result, trigger, generation, message };
    const line = { trigger, result, generation, hash, ...fields };
    if (result === "applied" || result === "unchanged") this.#log.info(message, line);
    else if (result === "failed") this.#log.error(message, line);
    else this.#log.warn(message, line);
    return { result, generation, hash, ...out };
  }
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
