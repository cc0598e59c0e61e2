/**
 * `start`: the whole pipeline in one process (src/runtime/pipeline.ts builds
 * and runs it). This file keeps the arguments and the signals: SIGTERM/SIGINT
 * stop the parts in reverse order (flush, commit, exit 0 within 10 s);
 * SIGHUP and saves of the pipeline file reload it (src/runtime/controller.ts:
 * a valid edit whose changes are all live is applied without a restart; an
 * invalid or restart-only edit changes nothing).
 */
import { parseArgs } from "node:util";
import { DEFAULT_PATH, DEFAULTS_FILE, loadPlan, type Plan } from "../config/mod.ts";
import { createLogger, type Logger } from "../log.ts";
import { describeDefaults, type Pipeline, startPipeline } from "../runtime/mod.ts";

const HELP = `Usage: deno task start [--config pipeline.yaml]

Runs the pipeline declared in pipeline.yaml. With no environment set it needs no
external service: the in-process simulator is the source, the lake is
./data/lake and PostgreSQL is an embedded PGlite in ./data/pglite, served on
127.0.0.1:55432 for psql and Superset.

Environment (see pipeline.yaml): SOURCE=kafka KAFKA_BROKERS=host:9092,
DATABASE_URL=postgres://user:pass@host:5432/db, LAKE_URI=gs://bucket/prefix,
API_PORT, API_TOKEN, ALLOW_SIMULATOR_WRITES=true.`;

/** Time allowed for a clean stop; the process exits anyway after it. */
const STOP_DEADLINE_MS = 9_500;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { config: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const plan = await loadPlan(values.config);
  const log = createLogger({ component: "start" });
  describeDefaults(plan, log);
  const stop = stopRequests(log);
  const file = watchedFile(values.config, plan);
  let pipeline: Pipeline;
  try {
    pipeline = await startPipeline({ plan, file, log, signal: stop.signal });
  } catch (e) {
    if (!stop.signal.aborted) throw e;
    stop.stopped(); // asked to stop while starting: what had started has stopped
    return 0;
  }
  const unwatch = reloadOnHangup(pipeline, log);
  void pipeline.done.then(() => stop.request("speed layer ended"));
  await stop.requested;
  unwatch();
  await pipeline.stop();
  stop.stopped();
  return 0;
}

/** The pipeline file to watch as given (problems name it so), or undefined on built-in defaults. */
function watchedFile(given: string | undefined, plan: Plan): string | undefined {
  if (plan.file === DEFAULTS_FILE) return undefined;
  return given ?? DEFAULT_PATH;
}

/** Reloads on SIGHUP (the pipeline itself follows its file's saves); returns what ends it. */
function reloadOnHangup(p: Pipeline, log: Logger): () => void {
  const onHup = () => void p.reloads.reload("signal");
  try {
    Deno.addSignalListener("SIGHUP", onHup);
  } catch (error) {
    log.warn("no SIGHUP on this platform: reloads follow the file's saves only", { error });
  }
  return () => {
    try {
      Deno.removeSignalListener("SIGHUP", onHup);
    } catch { /* never added */ }
  };
}

/** A signal this soon after the first is the same request delivered twice. */
const DUPLICATE_SIGNAL_MS = 2_000;

/**
 * The request to stop: the first SIGTERM/SIGINT, or the speed layer ending by
 * itself; from then on a clean stop has STOP_DEADLINE_MS. A terminal's Ctrl-C
 * or systemd's stop reaches both `deno task` and this process, and `deno
 * task` forwards it again: duplicates are ignored. A signal repeated later
 * means "stop now" and exits at once.
 */
function stopRequests(log: Logger) {
  const ac = new AbortController();
  let first = 0;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  let resolve: (why: string) => void = () => {};
  const requested = new Promise<string>((r) => resolve = r);
  const request = (why: string) => {
    if (first !== 0) return;
    first = Date.now();
    log.info("stopping", { signal: why });
    deadline = setTimeout(() => {
      log.error("clean stop took too long, exiting", { deadline_ms: STOP_DEADLINE_MS });
      Deno.exit(1);
    }, STOP_DEADLINE_MS);
    ac.abort(new Error(`stopping: ${why}`));
    resolve(why);
  };
  const handler = (sig: Deno.Signal) => () => {
    if (first !== 0 && Date.now() - first > DUPLICATE_SIGNAL_MS) {
      console.error(`error: ${sig} again while stopping: exiting without a clean stop`);
      Deno.exit(130);
    }
    request(sig);
  };
  Deno.addSignalListener("SIGTERM", handler("SIGTERM"));
  Deno.addSignalListener("SIGINT", handler("SIGINT"));
  const stopped = () => {
    clearTimeout(deadline);
    log.info("stopped cleanly");
  };
  return { signal: ac.signal, requested, request, stopped };
}
