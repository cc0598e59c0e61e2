/**
 * Shared set-up of the quota alert tests: a speed plan with
 * `speed.quota_alerts`, the speed layer started with the alert detector on a
 * real Kafka topic and PostgreSQL, users and hand-made events on chosen
 * partitions, a webhook receiver served by the test itself (checking each
 * signature, deduplicating by delivery id), and reading the alert topic back.
 * Expected alerts are computed in each test, plainly, not here.
 */
import { Kafka, logLevel } from "kafkajs";
import type { Plan } from "../../src/config/plan.ts";
import type { Db } from "../../src/db/db.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import type { Registry } from "../../src/metrics.ts";
import { type SpeedLayer, startSpeedLayer } from "../../src/speed/mod.ts";
import {
  type AlertOutput,
  DELIVERY_ID_HEADER,
  type QuotaAlerts,
  SIGNATURE_HEADER,
  startQuotaAlerts,
  verifySignature,
} from "../../src/alerts/mod.ts";
import { devicesByPartition } from "../../src/simulator/device_partitions.ts";
import { deviceId } from "../../src/simulator/ids.ts";
import { createLogger } from "../../src/log.ts";
import { kafkaBrokers, uniqueName } from "./services.ts";
import { waitFor } from "./speed_fixture.ts";

export const quiet = createLogger({ test: "quota_alerts" });

/** The `quota_alerts:` keys of a test plan (under `speed:`). */
export function alertsYaml(o: {
  thresholds?: number[];
  refresh?: string;
  webhook?: { url: string; secret: string; timeout?: string; attempts?: number; backoff?: string };
  kafka?: boolean;
  /** Default: a fresh name, so tests never read each other's alerts. */
  kafkaTopic?: string;
} = {}): string {
  const w = o.webhook;
  const topic = o.kafkaTopic ?? uniqueName("qa-alerts").replaceAll("_", "-");
  return `
  quota_alerts:
    enabled: true
    thresholds: [${(o.thresholds ?? [0.8, 1]).join(", ")}]
    refresh_interval: ${o.refresh ?? "30s"}
    outputs:
      kafka: { enabled: ${o.kafka ?? true}, topic: ${topic} }
${
    w
      ? `      webhook:
        url: ${w.url}
        secret: ${w.secret}
        timeout: ${w.timeout ?? "2s"}
        retry: { max_attempts: ${w.attempts ?? 10}, backoff: ${
        w.backoff ?? "100ms"
      }, max_backoff: 1s }
`
      : ""
  }`;
}

export interface AlertLayer {
  readonly layer: SpeedLayer;
  readonly alerts: QuotaAlerts;
  stop(): Promise<void>;
}

/** The speed layer on the plan's Kafka topic with the quota alert detector riding along. */
export async function startAlertLayer(
  plan: Plan,
  db: Db,
  registry: Registry,
  opts: { outputs?: readonly AlertOutput[]; pollMs?: number } = {},
): Promise<AlertLayer> {
  const alerts = await startQuotaAlerts({
    plan,
    db,
    registry,
    log: quiet,
    outputs: opts.outputs,
    pollMs: opts.pollMs ?? 200,
  });
  const k = plan.source.kafka;
  const source = createKafkaSource({
    brokers: k.brokers,
    clientId: k.clientId,
    topic: k.topic,
    group: k.group,
    fromBeginning: true,
  });
  const layer = await startSpeedLayer({
    plan,
    db,
    store: openStore(plan.lake),
    source,
    registry,
    log: quiet,
    participants: [alerts.participant],
  });
  let stopped = false;
  return {
    layer,
    alerts,
    async stop() {
      if (stopped) return;
      stopped = true;
      await layer.stop();
      await alerts.stop();
    },
  };
}

/** `n` simulator device ids keyed to `partition` of a `partitions`-partition topic. */
export function devicesOn(partition: number, n: number, partitions = 3): string[] {
  const list = devicesByPartition(Math.max(200, n * partitions * 4), partitions)[partition];
  if (list.length < n) throw new Error(`not ${n} devices on partition ${partition}`);
  return [...list.slice(0, n)].map(deviceId);
}

export interface TestUserRow {
  id: string;
  email: string;
  quota: number;
}

export async function insertUsers(db: Db, users: readonly TestUserRow[]): Promise<void> {
  await db.query(
    `INSERT INTO user_metadata (id, name, email, quota)
     SELECT u.id, u.email, u.email, u.quota
     FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(id, email, quota)
     ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, quota = EXCLUDED.quota`,
    [users.map((u) => u.id), users.map((u) => u.email), users.map((u) => u.quota)],
  );
}

/** One event as antennas publish it, keyed by its device. */
export function event(id: string, bytes: number, tMs: number, app = "SKYPE") {
  return {
    key: id,
    value: JSON.stringify({
      bytes,
      timestamp: Math.floor(tMs / 1000),
      app,
      id,
      antenna_id: "00000000-0000-0000-0001-000000000000",
    }),
  };
}

/** Waits until the layer has stored every offset the topic has now. */
export async function waitStored(layer: SpeedLayer, topic: string, timeoutMs = 60_000) {
  const kafka = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  let ends: Map<number, number>;
  try {
    ends = new Map(
      (await admin.fetchTopicOffsets(topic)).map((o) => [o.partition, Number(o.high)]),
    );
  } finally {
    await admin.disconnect();
  }
  await waitFor("every offset stored", () => {
    const parts = layer.status().partitions;
    return [...ends].every(([p, end]) =>
      end === 0 || parts.some((s) => s.partition === p && s.storedOffset >= end)
    );
  }, timeoutMs);
}

/** Waits until every share of the flushes is folded (usage and alerts decided). */
export async function waitFolded(db: Db, timeoutMs = 30_000) {
  await waitFor("every share folded", async () => {
    const rows = await db.query<{ n: number }>("SELECT count(*) AS n FROM quota_usage_shares");
    return Number(rows[0].n) === 0;
  }, timeoutMs);
}

/** Waits until the layer stored every offset the topic has now and their shares are folded. */
export async function waitSettled(layer: SpeedLayer, topic: string, db: Db, timeoutMs = 60_000) {
  await waitStored(layer, topic, timeoutMs);
  await waitFolded(db, timeoutMs);
}

/** `quota_alerts` rows, oldest first, as plain values. */
export async function readAlerts(db: Db) {
  const rows = await db.query<{
    id: number;
    hour: Date;
    email: string;
    threshold: number;
    quota: number;
    usage: number;
    crossed_at: Date | null;
    source: string;
    partition: number | null;
    offset: number | null;
    batch_status: string | null;
  }>(
    `SELECT id, hour, email, threshold, quota, usage, crossed_at, source, "partition", "offset",
       batch_status
     FROM quota_alerts ORDER BY id`,
  );
  return rows.map((r) => ({
    id: Number(r.id),
    hour: r.hour.getTime(),
    email: r.email,
    threshold: Number(r.threshold),
    quota: Number(r.quota),
    usage: Number(r.usage),
    crossedAt: r.crossed_at?.getTime() ?? null,
    source: r.source,
    partition: r.partition === null ? null : Number(r.partition),
    offset: r.offset === null ? null : Number(r.offset),
    batchStatus: r.batch_status,
  }));
}

/** Delivery states of `output`, by alert id. */
export async function readDeliveries(db: Db, output: string) {
  const rows = await db.query<
    { alert_id: number; state: string; attempts: number; last_error: string | null }
  >(
    `SELECT alert_id, state, attempts, last_error FROM quota_alert_deliveries
     WHERE output = $1 ORDER BY alert_id`,
    [output],
  );
  return rows.map((r) => ({
    alertId: Number(r.alert_id),
    state: r.state,
    attempts: Number(r.attempts),
    lastError: r.last_error,
  }));
}

/** One message of the alert topic: its key, delivery id header and JSON value. */
export interface TopicAlert {
  readonly key: string;
  readonly deliveryId: string;
  readonly value: Record<string, unknown>;
}

/** Every message of `topic` (read from the start until `min` are in and it is quiet). */
export async function readTopic(topic: string, min: number, timeoutMs = 30_000) {
  const kafka = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `${topic}-reader-${crypto.randomUUID()}` });
  const out: TopicAlert[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ message }) => {
        out.push({
          key: message.key?.toString() ?? "",
          deliveryId: String(message.headers?.["delivery-id"] ?? ""),
          value: JSON.parse(message.value!.toString()),
        });
        return Promise.resolve();
      },
    });
    await waitFor(`${min} messages on ${topic}`, () => out.length >= min, timeoutMs);
    // Anything more (a duplicate) would arrive right behind.
    await new Promise((r) => setTimeout(r, 1_500));
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/** One request the receiver got. */
export interface Received {
  readonly deliveryId: string;
  readonly attempt: number;
  readonly signed: boolean;
  readonly body: Record<string, unknown>;
  readonly status: number;
}

export interface Receiver {
  readonly url: string;
  /** Every request, in arrival order. */
  readonly requests: Received[];
  /** First accepted delivery per delivery id (what an idempotent receiver keeps). */
  readonly accepted: Map<string, Record<string, unknown>>;
  close(): Promise<void>;
}

/**
 * A webhook receiver on a free loopback port. `answer(n)` decides the reply
 * to the n-th request (0-based): a status, or "hang" to never answer (a
 * timeout on the sender's side). A 2xx reply to a valid signature is kept
 * once per delivery id.
 */
export function webhookReceiver(
  secret: string,
  answer: (n: number) => number | "hang" = () => 200,
): Receiver {
  const requests: Received[] = [];
  const accepted = new Map<string, Record<string, unknown>>();
  const hanging = new Set<() => void>();
  let n = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const raw = await req.text();
    const signed = await verifySignature(secret, raw, req.headers.get(SIGNATURE_HEADER));
    const deliveryId = req.headers.get(DELIVERY_ID_HEADER) ?? "";
    const body = JSON.parse(raw);
    const reply = answer(n++);
    if (reply === "hang") {
      requests.push({
        deliveryId,
        attempt: Number(req.headers.get("X-Antenna-Attempt")),
        signed,
        body,
        status: 0,
      });
      await new Promise<void>((r) => {
        hanging.add(r);
        req.signal.addEventListener("abort", () => r(), { once: true });
      });
      return new Response("too late", { status: 504 });
    }
    const status = signed ? reply : 401;
    requests.push({
      deliveryId,
      attempt: Number(req.headers.get("X-Antenna-Attempt")),
      signed,
      body,
      status,
    });
    if (status >= 200 && status < 300 && !accepted.has(deliveryId)) accepted.set(deliveryId, body);
    return new Response(null, { status });
  });
  const addr = server.addr as Deno.NetAddr;
  return {
    url: `http://127.0.0.1:${addr.port}/hooks/quota`,
    requests,
    accepted,
    async close() {
      for (const r of hanging) r();
      await server.shutdown();
    },
  };
}
