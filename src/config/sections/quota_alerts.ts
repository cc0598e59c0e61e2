/**
 * `speed.quota_alerts`: real-time quota alerts (src/alerts), a sub-section of
 * `speed`. Thresholds and outputs are fixed for a running detector so that
 * every (email, hour, threshold) is judged by one rule: a restart applies any
 * change of them.
 */

import type { PipelineConfig } from "../types.gen.ts";
import {
  type Frozen,
  type LintRule,
  type ObjectSpec,
  restart,
  type Section,
} from "../spec_types.ts";
import { BROKER, TOPIC } from "./_fields.ts";

const ALERTS = "quota alerts (users, detector, outputs and their outbox) start once, at start";

/** Retry settings of one alert output (a shared field group, like Redpanda Connect's). */
function retrySpec(what: string): ObjectSpec {
  return {
    type: "object",
    description:
      `How a failed ${what} delivery is retried: exponential backoff from \`backoff\`, ` +
      "doubling, capped at `max_backoff`; after `max_attempts` the delivery is recorded as " +
      "failed (shown by the API).",
    fields: {
      max_attempts: {
        type: "int",
        reload: restart(ALERTS),
        description: "Attempts before the delivery is recorded as failed.",
        default: 10,
        min: 1,
        max: 1_000,
      },
      backoff: {
        type: "duration",
        reload: restart(ALERTS),
        description: "Wait before the second attempt.",
        default: "1s",
        min: 10,
      },
      max_backoff: {
        type: "duration",
        reload: restart(ALERTS),
        description: "Longest wait between two attempts.",
        default: "5m",
        min: 10,
      },
    },
  };
}

const SPEC: ObjectSpec = {
  type: "object",
  typeName: "QuotaAlertsConfig",
  description: "Real-time quota alerts: the speed layer sums each user's usage in each hour " +
    "over all partitions and raises one alert per (email, hour, threshold) when it reaches a " +
    "threshold; the batch layer confirms or corrects them (README, Quota alerts).",
  fields: {
    enabled: {
      type: "bool",
      reload: restart(ALERTS),
      description: "Detect quota alerts in the speed layer of `start`.",
      default: true,
    },
    thresholds: {
      type: "list",
      reload: restart(ALERTS),
      description: "Shares of the hourly quota that raise an alert when usage reaches them " +
        "(usage >= share x quota); 1.0 is the quota itself.",
      minItems: 1,
      unique: true,
      default: [0.8, 1.0],
      example: [0.5, 0.8, 1.0],
      items: {
        type: "number",
        description: "A share of the quota, up to 4 decimals.",
        min: 0.0001,
        max: 100,
      },
    },
    hour: {
      type: "enum",
      // One value is allowed, and the plan does not carry it.
      reload: { restart: ALERTS, read: () => "event_time" },
      description: "Which hour an event's bytes count in: the UTC hour of its event time, the " +
        "batch layer's hours, so both layers judge the same usage (processing-time hours " +
        "would disagree with the batch layer on every late event).",
      values: ["event_time"],
      default: "event_time",
    },
    refresh_interval: {
      type: "duration",
      reload: restart(ALERTS),
      description: "How often quotas and emails are reloaded from `user_metadata`: a change " +
        "reaches the running process within this, without a restart.",
      default: "30s",
      min: 100,
    },
    outputs: {
      type: "object",
      description: "Where alerts go, besides the `quota_alerts` table; each optional. " +
        "Deliveries are retried apart from consumption and survive restarts (an outbox).",
      fields: {
        kafka: {
          type: "object",
          description: "A Kafka topic of JSON alerts keyed by email, header `delivery-id`.",
          fields: {
            enabled: {
              type: "bool",
              // The plan has the output, or not (off, or no Kafka to publish to).
              reload: {
                restart: ALERTS,
                read: (p) => p.speed.quotaAlerts.outputs.kafka !== undefined,
              },
              description: "Publish alerts when there is a Kafka: the source is `kafka` or " +
                "`brokers` is set (with the simulator and no brokers, this output is off).",
              default: true,
            },
            topic: {
              ...TOPIC,
              reload: restart(ALERTS),
              description: "Topic of the alerts.",
              default: "quota.alerts",
            },
            brokers: {
              type: "list",
              reload: restart(ALERTS),
              description: "Brokers of the alert topic; default: `source.kafka.brokers`.",
              optional: true,
              minItems: 1,
              example: "10.0.0.5:9092",
              items: BROKER,
            },
            retry: retrySpec("Kafka"),
          },
        },
        webhook: {
          type: "object",
          description: "An HTTP POST of each alert as JSON, signed with HMAC-SHA256.",
          fields: {
            url: {
              type: "string",
              reload: restart(ALERTS),
              description: "Receiver URL; unset = no webhook.",
              optional: true,
              example: "https://ops.example.com/hooks/quota",
              pattern: /^https?:\/\/\S+$/,
              patternText: "an http(s):// URL",
            },
            secret: {
              type: "string",
              reload: restart(ALERTS),
              secret: true,
              description: "Key of the `X-Antenna-Signature: sha256=<hex>` header, an " +
                "HMAC-SHA256 of the body; required with `url`.",
              optional: true,
              example: "${QUOTA_WEBHOOK_SECRET}",
            },
            timeout: {
              type: "duration",
              reload: restart(ALERTS),
              description: "An attempt that has no answer after this fails (and is retried).",
              default: "5s",
              min: 10,
            },
            concurrency: {
              type: "int",
              reload: restart(ALERTS),
              description: "Deliveries in flight at once.",
              default: 4,
              min: 1,
              max: 256,
            },
            retry: retrySpec("webhook"),
          },
        },
        stream: {
          type: "object",
          description: "The API's Server-Sent Events stream `GET /api/v1/quota/alerts/stream`.",
          fields: {
            enabled: {
              type: "bool",
              reload: { restart: ALERTS, read: (p) => p.speed.quotaAlerts.outputs.stream },
              description: "Serve the stream.",
              default: true,
            },
          },
        },
      },
    },
  },
};

const RULES: readonly LintRule<PipelineConfig>[] = [
  {
    id: "quota_alert_thresholds",
    description:
      "`speed.quota_alerts.thresholds` have at most 4 decimals (alerts are keyed by them).",
    check(c, report) {
      c.speed.quota_alerts.thresholds.forEach((t, i) => {
        if (Math.abs(Math.round(t * 10_000) - t * 10_000) > 1e-6) {
          report(
            `speed.quota_alerts.thresholds[${i}]`,
            `a threshold has at most 4 decimals, got ${t}`,
          );
        }
      });
    },
  },
  {
    id: "quota_alert_topic",
    description: "The quota alert topic differs from the event topic and the dead-letter topic.",
    check(c, report) {
      const k = c.speed.quota_alerts.outputs.kafka;
      if (k.topic === c.source.kafka.topic || k.topic === c.source.kafka.dead_letter_topic) {
        report(
          "speed.quota_alerts.outputs.kafka.topic",
          `topic "${k.topic}" is also the event or dead-letter topic`,
        );
      }
    },
  },
  {
    id: "quota_alert_webhook_secret",
    description: "A quota alert webhook (`url`) has a `secret` to sign its deliveries with.",
    check(c, report) {
      const w = c.speed.quota_alerts.outputs.webhook;
      if (w.url !== undefined && w.secret === undefined) {
        report(
          "speed.quota_alerts.outputs.webhook.secret",
          "a webhook needs a secret: receivers check the X-Antenna-Signature header with it",
          "missing",
        );
      }
    },
  },
];

function compileRetry(r: { max_attempts: number; backoff: number; max_backoff: number }) {
  return {
    maxAttempts: r.max_attempts,
    /** Wait before the second attempt, ms; doubles each time. */
    backoffMs: r.backoff,
    maxBackoffMs: r.max_backoff,
  };
}

function compileKafka(q: QuotaAlertsConfig, c: PipelineConfig) {
  const k = q.outputs.kafka;
  const brokers = k.brokers ?? (c.source.kind === "kafka" ? c.source.kafka.brokers : undefined);
  if (!k.enabled || !brokers) return undefined;
  return {
    brokers: [...brokers],
    topic: k.topic,
    clientId: `${c.source.kafka.client_id}-alerts`,
    retry: compileRetry(k.retry),
  };
}

function compileWebhook(q: QuotaAlertsConfig) {
  const w = q.outputs.webhook;
  if (w.url === undefined || w.secret === undefined) return undefined;
  return {
    url: w.url,
    /** HMAC-SHA256 key of the signature header. */
    secret: w.secret,
    timeoutMs: w.timeout,
    concurrency: w.concurrency,
    retry: compileRetry(w.retry),
  };
}

/**
 * The Kafka output needs a Kafka: the source's when it is `kafka`, else
 * explicit brokers; with the simulator and no brokers it is off (the log of
 * `start` says so).
 */
function compile(q: QuotaAlertsConfig, { config }: { config: PipelineConfig }) {
  const kafka = compileKafka(q, config);
  const webhook = compileWebhook(q);
  return {
    enabled: q.enabled,
    /** Shares of the quota, ascending, 4 decimals at most. */
    thresholds: [...q.thresholds].sort((a, b) => a - b),
    /** How often user_metadata is reloaded, ms. */
    refreshIntervalMs: q.refresh_interval,
    outputs: {
      /** Undefined when off, or when there is no Kafka (simulator source, no brokers). */
      ...(kafka ? { kafka } : {}),
      /** Undefined without a url. */
      ...(webhook ? { webhook } : {}),
      /** The API's Server-Sent Events stream. */
      stream: q.outputs.stream.enabled,
    },
  };
}

type QuotaAlertsConfig = PipelineConfig["speed"]["quota_alerts"];
export type QuotaAlertsPlan = Frozen<ReturnType<typeof compile>>;
/** How a failed alert delivery is retried (exponential backoff, then a recorded failure). */
export type RetryPlan = Frozen<ReturnType<typeof compileRetry>>;
/** The Kafka output of quota alerts: JSON keyed by email. */
export type AlertKafkaPlan = NonNullable<QuotaAlertsPlan["outputs"]["kafka"]>;
/** The webhook output of quota alerts: signed JSON POSTs. */
export type AlertWebhookPlan = NonNullable<QuotaAlertsPlan["outputs"]["webhook"]>;

export const quotaAlerts: Section<QuotaAlertsConfig, ReturnType<typeof compile>> = {
  spec: SPEC,
  rules: RULES,
  compile,
};
