/**
 * `speed.quota_alerts` in pipeline.yaml: the repo's file compiles to the
 * documented defaults (Kafka output only when there is a Kafka), env
 * variables switch the webhook and the Kafka output on, and the linter
 * reports each mistake of the section with its position.
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { lintYaml, loadPlan, planFromYaml, redactPlan } from "../../src/config/mod.ts";

const PIPELINE = join(dirname(dirname(dirname(fileURLToPath(import.meta.url)))), "pipeline.yaml");

Deno.test("loadPlan() gives quota alerts on embedded defaults: 80 % and 100 %, stream, no Kafka", async () => {
  const q = (await loadPlan(PIPELINE, { env: {} })).speed.quotaAlerts;
  assert.deepEqual(q, {
    enabled: true,
    thresholds: [0.8, 1],
    refreshIntervalMs: 30_000,
    outputs: { stream: true },
  });
});

Deno.test("loadPlan() switches the Kafka output on with a Kafka source and the webhook with a URL", async () => {
  const plan = await loadPlan(PIPELINE, {
    env: {
      SOURCE: "kafka",
      KAFKA_BROKERS: "10.0.0.5:9092",
      QUOTA_WEBHOOK_URL: "https://ops.example.com/hooks/quota",
      QUOTA_WEBHOOK_SECRET: "s3cret",
    },
  });
  const o = plan.speed.quotaAlerts.outputs;
  assert.deepEqual(o.kafka, {
    brokers: ["10.0.0.5:9092"],
    topic: "quota.alerts",
    clientId: "antenna-lambda-alerts",
    retry: { maxAttempts: 10, backoffMs: 1_000, maxBackoffMs: 300_000 },
  });
  assert.deepEqual(o.webhook, {
    url: "https://ops.example.com/hooks/quota",
    secret: "s3cret",
    timeoutMs: 5_000,
    concurrency: 4,
    retry: { maxAttempts: 10, backoffMs: 1_000, maxBackoffMs: 300_000 },
  });
  const red = JSON.stringify(redactPlan(plan));
  assert.ok(!red.includes("s3cret"), "the webhook secret is redacted");
});

Deno.test("planFromYaml() sorts thresholds and takes explicit alert brokers with the simulator", () => {
  const plan = planFromYaml(
    "speed:\n  quota_alerts:\n    thresholds: [1, 0.5]\n    outputs:\n      kafka:\n        brokers: k1:9092\n",
    { env: {} },
  );
  assert.deepEqual(plan.speed.quotaAlerts.thresholds, [0.5, 1]);
  assert.deepEqual(plan.speed.quotaAlerts.outputs.kafka?.brokers, ["k1:9092"]);
});

Deno.test("lintYaml() reports the mistakes of speed.quota_alerts with their positions", () => {
  const text = [
    "speed:",
    "  quota_alerts:",
    "    thresholds: [0.8, 0.80001, 0]",
    "    refresh: 1s",
    "    hour: processing_time",
    "    outputs:",
    "      kafka:",
    "        topic: devices",
    "      webhook:",
    "        url: https://ops.example.com/hook",
    "",
  ].join("\n");
  const got = lintYaml(text, "p.yaml", {}).map((p) => `${p.line}:${p.col} ${p.path}: ${p.kind}`);
  assert.deepEqual(got, [
    "3:23 speed.quota_alerts.thresholds[1]: invalid", // more than 4 decimals
    "3:32 speed.quota_alerts.thresholds[2]: invalid", // below 0.0001
    "4:5 speed.quota_alerts.refresh: unknown_key",
    "5:11 speed.quota_alerts.hour: invalid",
    "8:16 speed.quota_alerts.outputs.kafka.topic: invalid", // the event topic
    "10:9 speed.quota_alerts.outputs.webhook.secret: missing", // a url without a secret
  ]);
});
