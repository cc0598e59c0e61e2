/**
 * Opening what the pipeline stands on, from the plan: the database (with its
 * migrations, the simulator's users and the embedded server) and the event
 * source; and the start's first lines, saying which embedded defaults are
 * active and how to point each part elsewhere.
 */
import type { Plan } from "../config/mod.ts";
import type { Db } from "../db/db.ts";
import { migrate, openDb, redactUrl, serveEmbedded } from "../db/mod.ts";
import { openKafkaFromPlan } from "../kafka/mod.ts";
import type { DeadLetterSink, EventSource } from "../speed/mod.ts";
import type { Logger } from "../log.ts";
import { createDbTimelineStore, createSimulatorSource, seedUsers } from "../simulator/mod.ts";

/** Where a part that must be stopped later is registered. */
export interface StopList {
  add(name: string, stop: () => Promise<unknown>): void;
}

/** Opens the database, applies the migrations, seeds simulator users, serves the embedded one. */
export async function openDatabase(plan: Plan, log: Logger, stops: StopList): Promise<Db> {
  // openDb already turns connection failures into one-line UserErrors.
  const db = await openDb({
    url: plan.database.url,
    embeddedDir: plan.database.url ? undefined : plan.database.embedded.dir,
    maxConnections: plan.database.maxConnections,
  });
  stops.add("database", () => db.close());
  const applied = await migrate(db);
  log.info("database ready", { backend: db.kind, migrations_applied: applied.applied });
  if (plan.source.kind === "simulator") {
    const n = await seedUsers(db, { devices: plan.source.simulator.devices });
    log.info("simulator users seeded", { inserted: n, devices: plan.source.simulator.devices });
  }
  if (!plan.database.url && plan.database.embedded.port > 0) {
    const server = await serveEmbedded(db, {
      host: plan.database.embedded.host,
      port: plan.database.embedded.port,
    });
    stops.add("embedded-server", () => server.close());
    log.info("embedded PostgreSQL served", { url: server.url });
  }
  return db;
}

/** The plan's event source: the in-process simulator, or Kafka with its dead-letter topic. */
export async function openSource(
  plan: Plan,
  db: Db,
): Promise<{ source: EventSource; deadLetters?: DeadLetterSink }> {
  if (plan.source.kind === "simulator") {
    // The timeline lives beside the speed layer's progress (same topic name),
    // so offsets it recorded come back with the same messages after a restart.
    const source = createSimulatorSource({
      simulator: plan.source.simulator,
      timeline: createDbTimelineStore(db, plan.source.kafka.topic),
      partitions: 3,
      maxPayloadBytes: plan.schema.maxPayloadBytes,
    });
    return { source };
  }
  return await openKafkaFromPlan(plan.source.kafka);
}

/** Says which embedded defaults are active and how to point each part elsewhere. */
export function describeDefaults(plan: Plan, log: Logger): void {
  if (plan.source.kind === "simulator") {
    log.info("source: in-process simulator (default)", {
      antennas: plan.source.simulator.antennas,
      devices: plan.source.simulator.devices,
      rate: plan.source.simulator.rate,
      hint: "set SOURCE=kafka and KAFKA_BROKERS=host:9092 to consume topic " +
        `"${plan.source.kafka.topic}" from Kafka`,
    });
  } else {
    log.info("source: Kafka", {
      brokers: plan.source.kafka.brokers,
      topic: plan.source.kafka.topic,
    });
  }
  if (plan.database.url) {
    log.info("database: PostgreSQL", { url: redactUrl(plan.database.url) });
  } else {
    log.info("database: embedded PGlite (default)", {
      dir: plan.database.embedded.dir,
      hint: "set DATABASE_URL=postgres://user:pass@host:5432/db to use PostgreSQL or Cloud SQL",
    });
  }
  log.info(`lake: ${plan.lake.kind === "file" ? "local folder" : "Google Cloud Storage"}`, {
    uri: plan.lake.uri,
    hint: plan.lake.kind === "file" ? "set LAKE_URI=gs://bucket/prefix to use GCS" : undefined,
  });
}
