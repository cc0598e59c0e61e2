/**
 * Kills an executor of the application running on the stack's standalone
 * cluster, as a machine that dies or an out-of-memory killer would: SIGKILL
 * to the executor's JVM once it has run tasks, so what it held (its shuffle
 * output, its cached blocks) is lost with it and Spark must compute it again.
 * Tests run one at a time, so the running application is the test's.
 */
import { SPARK_MASTER_UI_PORT, SPARK_WORK_DIR } from "../../src/stack/spark.ts";

export interface KilledExecutor {
  readonly appId: string;
  readonly executorId: string;
  /** The tasks it had started when it was killed. */
  readonly tasks: number;
}

/** The ids of the applications the master is running. */
async function activeApps(): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${SPARK_MASTER_UI_PORT}/json/`);
  const body = await res.json() as { activeapps?: { id: string }[] };
  return (body.activeapps ?? []).map((a) => a.id);
}

/** The application's executor JVMs: pid and executor id, from their command lines. */
async function executors(appId: string): Promise<{ pid: number; id: string }[]> {
  const out = await new Deno.Command("pgrep", {
    args: ["-af", "--", `CoarseGrainedExecutorBackend .*--app-id ${appId}( |$)`],
  }).output();
  return new TextDecoder().decode(out.stdout).split("\n").flatMap((line) => {
    const id = / --executor-id (\S+)/.exec(line)?.[1];
    return id ? [{ pid: Number(line.split(" ")[0]), id }] : [];
  });
}

/** Tasks an executor has started, from its log in the worker's folder. */
async function startedTasks(appId: string, executorId: string): Promise<number> {
  const log = await Deno.readTextFile(`${SPARK_WORK_DIR}/${appId}/${executorId}/stderr`)
    .catch(() => "");
  return log.match(/Running task /g)?.length ?? 0;
}

/**
 * Watches the cluster and SIGKILLs the first executor seen to have started a
 * task; `killed` settles with it, or with undefined when `stop()` came first.
 */
export function killAnExecutor(): { killed: Promise<KilledExecutor | undefined>; stop(): void } {
  let stopped = false;
  const killed = (async () => {
    while (!stopped) {
      for (const appId of await activeApps()) {
        for (const e of await executors(appId)) {
          const tasks = await startedTasks(appId, e.id);
          if (tasks > 0) {
            Deno.kill(e.pid, "SIGKILL");
            return { appId, executorId: e.id, tasks };
          }
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    return undefined;
  })();
  return {
    killed,
    stop: () => {
      stopped = true;
    },
  };
}
