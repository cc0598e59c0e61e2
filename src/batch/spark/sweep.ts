/**
 * Files of Spark runs that died: a process killed during a Spark run leaves
 * its run's folder (users snapshot, script, Spark's output) under
 * `spark-runs/` beside the lake, since its own clean-up never ran. Each Spark
 * run sweeps them first. A run's folder is named after its run id
 * (`run-<id>/`, engine.ts), and batch_runs says whether that run can still
 * use it: only a `running` row whose lease has not passed can. Folders this
 * naming does not cover (not ours, or of another database) are left alone.
 */
import type { LakePlan } from "../../config/plan.ts";
import type { Queryable } from "../../db/mod.ts";
import type { ObjectStore } from "../../lake/mod.ts";
import type { Logger } from "../../log.ts";

/** Where runs' files live, relative to the lake root; never an hour folder. */
export const RUNS_PREFIX = "spark-runs/";

/** A run's folder under RUNS_PREFIX: `run-<run_id>/`. */
const RUN_FOLDER = /^run-(\d+)\/$/;

/** Removes every file of a run's folder (`prefix`, ending in `/`); throws what fails. */
export async function removeRunFiles(
  store: ObjectStore,
  lake: LakePlan,
  prefix: string,
): Promise<void> {
  const entries = await store.list(prefix);
  await Promise.all(entries.map((e) => store.delete(e.key)));
  // A local lake keeps the folders Spark made; a bucket has none left.
  if (lake.kind === "file") {
    await Deno.remove(`${lake.root}/${prefix}`, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    // The parent goes too once no other run uses it (a non-recursive remove fails otherwise).
    await Deno.remove(`${lake.root}/${RUNS_PREFIX}`).catch(() => {});
  }
}

/** Run folders present in the store (`spark-runs/run-<id>/`), by run id. */
export async function runFolders(store: ObjectStore): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const e of await store.list(RUNS_PREFIX)) {
    const rest = e.key.slice(RUNS_PREFIX.length);
    const folder = rest.slice(0, rest.indexOf("/") + 1);
    const id = RUN_FOLDER.exec(folder)?.[1];
    if (id !== undefined) out.set(id, RUNS_PREFIX + folder);
  }
  return out;
}

/**
 * Of `runIds`, those whose files must stay: a `running` row with a lease
 * still ahead. A run without a row is not ours to judge (kept); a row that
 * finished, failed, or whose lease passed is dead (a run that lost its
 * lease cannot write its hour any more).
 */
export async function deadRuns(db: Queryable, runIds: readonly string[]): Promise<string[]> {
  if (runIds.length === 0) return [];
  const rows = await db.query<{ run_id: string | number }>(
    `SELECT run_id FROM batch_runs
     WHERE run_id = ANY($1::bigint[])
       AND NOT (status = 'running' AND lease_until IS NOT NULL AND lease_until >= now())`,
    [runIds.map(Number)],
  );
  return rows.map((r) => String(r.run_id));
}

/**
 * Removes the folders of dead runs, except the one of run `keep` (the run
 * about to start); returns the folders removed. Never throws: a sweep that
 * fails is logged, and the next Spark run tries again.
 */
export async function sweepDeadRuns(
  store: ObjectStore,
  lake: LakePlan,
  db: Queryable,
  log: Logger,
  keep?: string,
): Promise<string[]> {
  try {
    const folders = await runFolders(store);
    if (keep !== undefined) folders.delete(keep);
    const removed: string[] = [];
    for (const id of await deadRuns(db, [...folders.keys()])) {
      await removeRunFiles(store, lake, folders.get(id)!);
      removed.push(folders.get(id)!);
    }
    if (removed.length) log.info("removed the files of dead Spark runs", { prefixes: removed });
    return removed;
  } catch (err) {
    log.warn("could not sweep the files of dead Spark runs", { error: err });
    return [];
  }
}
