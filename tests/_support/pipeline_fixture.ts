/**
 * A database filled by the real pipeline, for tests of what users look at
 * (the Superset dashboard): the simulator produces past hours of events to a
 * fresh Kafka topic, the speed layer consumes them into PostgreSQL and a local
 * lake, and the batch layer runs the older hours. Later hours stay speed-only,
 * so the serving views show both sources. Quota alerts ride along (the seeded
 * low-quota users cross every hour; the batch layer confirms the older hours).
 */
import { delay } from "../../src/async/delay.ts";
import { planFromYaml } from "../../src/config/mod.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { seedUsers } from "../../src/simulator/mod.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { simulate } from "../../src/simulator/mod.ts";
import { startSpeedLayer } from "../../src/speed/mod.ts";
import { createBatchRunner } from "../../src/batch/mod.ts";
import { startQuotaAlerts } from "../../src/alerts/mod.ts";
import { HOUR_MS } from "../../src/core/mod.ts";
import { kafkaBrokers, uniqueName } from "./services.ts";
import { waitCommitted } from "./speed_fixture.ts";

export interface PipelineSummary {
  readonly produced: number;
  readonly firstHourMs: number;
  readonly hours: number;
  readonly batchedHours: number;
  /** The pipeline file of the run (kept only with `keepLake`). */
  readonly configYaml: string;
  /** The lake folder, deleted unless `keepLake`: then the caller removes it. */
  readonly lakeDir: string;
}

export interface PipelineOptions {
  hours?: number;
  batchedHours?: number;
  /** Events per second of event time. */
  eventsPerSecond?: number;
  keepLake?: boolean;
}

/**
 * Runs `hours` hours of simulated traffic (ending at the last full hour before
 * now) through the speed layer into `databaseUrl`, then batches the first
 * `batchedHours` of them.
 */
export async function populateFromPipeline(
  databaseUrl: string,
  opts: PipelineOptions = {},
): Promise<PipelineSummary> {
  const hours = opts.hours ?? 6;
  const batchedHours = opts.batchedHours ?? 4;
  const rate = opts.eventsPerSecond ?? 4;
  const topic = uniqueName("pipeline").replaceAll("_", "-");
  const lakeDir = await Deno.makeTempDir({ prefix: "pipeline-lake-" });
  const firstHourMs = Math.floor(Date.now() / HOUR_MS) * HOUR_MS - hours * HOUR_MS;

  const configYaml = `
source:
  kind: kafka
  kafka: { brokers: "${
    kafkaBrokers().join(",")
  }", topic: ${topic}, group: ${topic}, dead_letter_topic: ${topic}.dlq }
speed:
  idle_timeout: 1s
  flush_interval: 200ms
  quota_alerts: { outputs: { kafka: { enabled: false } } }
lake: { uri: "file://${lakeDir}", compaction: { enabled: false } }
database: { url: "${databaseUrl}" }
`;
  const plan = planFromYaml(configYaml, { env: {} });

  const db = await openDb({ url: databaseUrl });
  try {
    await migrate(db);
    await seedUsers(db, { devices: plan.source.simulator.devices });
    const summary = await simulate({
      brokers: plan.source.kafka.brokers,
      topic,
      createTopic: true,
      partitions: 3,
      rate,
      count: hours * 3600 * rate,
      progressMs: 0,
      generator: {
        seed: 42,
        startMs: firstHourMs,
        rate,
        lateShare: 0.02,
        maxLatenessMs: 60_000,
        malformedShare: 0.01,
      },
    });

    const k = plan.source.kafka;
    const source = createKafkaSource({
      brokers: k.brokers,
      clientId: "pipeline-fixture",
      topic,
      group: k.group,
      fromBeginning: true,
    });
    const store = openStore(plan.lake);
    const registry = new Registry();
    const alerts = await startQuotaAlerts({ plan, db, registry });
    try {
      const layer = await startSpeedLayer({
        plan,
        db,
        store,
        source,
        registry,
        participants: [alerts.participant],
      });
      try {
        await waitCommitted(layer, topic, 180_000);
        // Let the idle timeout close the last windows.
        await delay(2_500);
      } finally {
        await layer.stop();
      }
      await alerts.settle(); // every speed alert raised before the batch judges the hours

      const batch = createBatchRunner({ plan, db, store, participants: [alerts.confirmation] });
      for (let h = 0; h < batchedHours; h++) {
        const run = await batch.runHour(firstHourMs + h * HOUR_MS, "manual");
        if (run.status !== "succeeded") throw new Error(`batch hour ${h} ${run.status}`);
      }
    } finally {
      await alerts.stop(); // folds the last shares
    }
    return { produced: summary.produced, firstHourMs, hours, batchedHours, configYaml, lakeDir };
  } finally {
    await db.close();
    if (!opts.keepLake) await Deno.remove(lakeDir, { recursive: true }).catch(() => {});
  }
}
