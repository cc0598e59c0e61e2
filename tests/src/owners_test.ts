/**
 * One owner per table: each table and view created in sql/ is queried (after
 * FROM, JOIN, INTO, UPDATE or TABLE) only from the src/ folder that owns it;
 * other folders call the owner's functions. The few reads from another
 * folder are listed here with why, so a new one fails until it moves behind
 * its owner's function or is argued for.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;

/** Every table and view, by the folder that owns it. */
const OWNERS: Readonly<Record<string, readonly string[]>> = {
  db: ["user_metadata"],
  speed: [
    "dead_letters",
    "lake_hour_changes",
    "speed_compactions",
    "speed_distinct",
    "speed_hourly",
    "speed_late_dropped",
    "speed_metrics",
    "speed_partials",
    "speed_progress",
    "speed_topics",
    // Each partition's watermark (sql/002, over speed_progress): the speed
    // layer's rule of which windows are closed, read by its reconciliation
    // side and its serving fragments (src/speed/serving_sql.ts).
    "speed_watermarks",
  ],
  // backfill_hours: the hours a backfill asks the batch layer to run again;
  // the batch layer's stale rule reads it, and batch ranks below backfill.
  batch: [
    "backfill_hours",
    "batch_hours",
    "batch_hours_current",
    "batch_reconciliation",
    "batch_reconciliation_t",
    "batch_runs",
    "bytes_hourly",
    "metric_catalog",
    "user_quota_limit",
  ],
  backfill: ["backfill_partitions", "metric_definitions"],
  alerts: [
    "quota_alert_clocks",
    "quota_alert_deliveries",
    "quota_alert_reconciliation",
    "quota_alert_slots",
    "quota_alerts",
    "quota_usage",
    "quota_usage_current",
    "quota_usage_shares",
    // A quota breach's speed half is the alerts' quota_usage: read through src/alerts/store.ts.
    "users_over_quota",
  ],
  simulator: ["simulator_issued", "simulator_timeline"],
  // The plan generation the running pipeline last applied (src/runtime/generation.ts).
  runtime: ["plan_generation"],
  // The serving layer's views, read by the API.
  api: [
    "bytes",
    "bytes_live",
    "serving_5m",
    "serving_5m_live",
    "serving_hourly",
    "user_usage_hourly",
  ],
};

/**
 * Reads from a folder that does not own the table, as `table ← folder`, with
 * why. None remain: the API composes its serving statements from its owners'
 * fragments (src/speed/serving_sql.ts, src/batch/read.ts, src/db/users.ts),
 * and the batch layer's stale rule joins the lake changes through the speed
 * layer's `lakeChangesJoinSql`.
 */
const ALLOWED: Readonly<Record<string, string>> = {};

async function tables(): Promise<string[]> {
  const out = new Set<string>();
  for await (const e of Deno.readDir(join(ROOT, "sql"))) {
    if (!e.name.endsWith(".sql")) continue;
    const text = await Deno.readTextFile(join(ROOT, "sql", e.name));
    for (
      const m of text.matchAll(
        /CREATE (?:OR REPLACE )?(?:TABLE|VIEW)(?: IF NOT EXISTS)? ([a-z_0-9]+)/gi,
      )
    ) {
      out.add(m[1]);
    }
  }
  return [...out].sort();
}

/** `table ← folder` for every src/ folder whose .ts files query the table. */
async function uses(names: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(p);
      else if (p.endsWith(".ts")) {
        const folder = p.slice(join(ROOT, "src").length + 1).split("/")[0];
        const text = await Deno.readTextFile(p);
        for (const t of names) {
          if (new RegExp(`\\b(FROM|JOIN|INTO|UPDATE|TABLE)\\s+${t}\\b`).test(text)) {
            out.add(`${t} ← ${folder}`);
          }
        }
      }
    }
  };
  await walk(join(ROOT, "src"));
  return out;
}

Deno.test("every table and view of sql/ has one owning folder", async () => {
  const owned = Object.values(OWNERS).flat();
  assert.deepEqual((await tables()).filter((t) => !owned.includes(t)), [], "no owner");
  assert.deepEqual(owned.filter((t, i) => owned.indexOf(t) !== i), [], "two owners");
});

Deno.test("a table is queried only from its owner's folder, or an argued exception", async () => {
  const ownerOf = new Map(Object.entries(OWNERS).flatMap(([f, ts]) => ts.map((t) => [t, f])));
  const all = await uses(await tables());
  const foreign = [...all].filter((u) => {
    const [t, folder] = u.split(" ← ");
    return ownerOf.get(t) !== folder;
  });
  assert.deepEqual(foreign.filter((u) => !(u in ALLOWED)).sort(), []);
  // An exception whose query is gone is removed, so the list stays the truth.
  assert.deepEqual(Object.keys(ALLOWED).filter((a) => !all.has(a)), []);
});
