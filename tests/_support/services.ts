/**
 * Addresses of the real services the tests use, set by `deno task test`
 * (tests/_support/test_runner.ts) after it has started the local stack. A test that
 * needs a service fails loudly when its variable is missing: never a silent skip.
 *
 * - TEST_KAFKA_BROKERS  e.g. 127.0.0.1:19092
 * - TEST_PG_URL         admin URL of the test PostgreSQL server, e.g. postgres://postgres@127.0.0.1:15432/postgres
 * - TEST_GCS_ENDPOINT   fake-gcs-server, e.g. http://127.0.0.1:14443
 */
import postgres from "postgres";
import { Kafka, logLevel } from "kafkajs";

function required(name: string): string {
  const v = Deno.env.get(name);
  if (!v) {
    throw new Error(
      `${name} is not set: run the tests with \`./deno task test\`, which starts the local stack`,
    );
  }
  return v;
}

export function kafkaBrokers(): string[] {
  return required("TEST_KAFKA_BROKERS").split(",");
}

export function pgAdminUrl(): string {
  return required("TEST_PG_URL");
}

export function gcsEndpoint(): string {
  return required("TEST_GCS_ENDPOINT");
}

/** A short unique suffix for names of databases, topics and buckets. */
export function uniqueName(prefix: string): string {
  const rand = crypto.randomUUID().replaceAll("-", "").slice(0, 10);
  return `${prefix}_${rand}`.toLowerCase();
}

export interface FreshDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

/** Creates an empty database on the test server; `drop()` removes it. */
export async function freshDatabase(prefix = "t"): Promise<FreshDatabase> {
  const admin = postgres(pgAdminUrl(), { max: 1, onnotice: () => {} });
  const name = uniqueName(prefix);
  try {
    await admin.unsafe(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(pgAdminUrl());
  u.pathname = "/" + name;
  return {
    url: u.toString(),
    name,
    async drop() {
      const a = postgres(pgAdminUrl(), { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await a.end();
      }
    },
  };
}

/** Creates a topic with `partitions` partitions and returns its name. */
export async function freshTopic(prefix = "t", partitions = 3): Promise<string> {
  const topic = uniqueName(prefix).replaceAll("_", "-");
  const kafka = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [{ topic, numPartitions: partitions }],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
  return topic;
}
