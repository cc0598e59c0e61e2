/**
 * A standalone speed layer process for tests that need to kill it (`kill -9`)
 * or run several in one consumer group:
 * `deno run -A tests/_support/speed_child.ts --config <pipeline.yaml>`. It migrates
 * the plan's PostgreSQL, consumes the plan's Kafka topic into its lake, prints
 * one `{"status":…}` JSON line to stdout per second, and on SIGTERM/SIGINT
 * flushes, commits and exits 0. With `--alerts`, quota alerts ride along (the
 * plan's `speed.quota_alerts`, its outputs included), as in `start`.
 */
import { parseArgs } from "node:util";
import { loadPlan } from "../../src/config/mod.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { openKafkaFromPlan } from "../../src/kafka/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { log } from "../../src/log.ts";
import { startSpeedLayer } from "../../src/speed/mod.ts";
import { startQuotaAlerts } from "../../src/alerts/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { config: { type: "string" }, alerts: { type: "boolean", default: false } },
});
const plan = await loadPlan(values.config, { env: Deno.env.toObject() });
const k = plan.source.kafka;
const db = await openDb({ url: plan.database.url, maxConnections: 4 });
await migrate(db);
const { source, deadLetters: dlq } = await openKafkaFromPlan(k);
const alerts = values.alerts
  ? await startQuotaAlerts({
    plan,
    db,
    log: log.child({ component: "quota_alerts", pid: Deno.pid }),
    pollMs: 200,
  })
  : undefined;
const layer = await startSpeedLayer({
  plan,
  db,
  store: openStore(plan.lake),
  source,
  deadLetters: dlq,
  log: log.child({ component: "speed", pid: Deno.pid }),
  participants: alerts ? [alerts.participant] : undefined,
});
const encoder = new TextEncoder();
const timer = setInterval(() => {
  Deno.stdout.writeSync(encoder.encode(JSON.stringify({ status: layer.status() }) + "\n"));
}, 1_000);
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  await layer.stop();
  await alerts?.stop();
  await dlq.close();
  await db.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
Deno.addSignalListener("SIGINT", stop);
await layer.done;
