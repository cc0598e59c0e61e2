/**
 * A copy of the plan safe to show (API `GET /api/v1/config`, logs): passwords
 * inside URLs, the API token and the quota alert webhook's secret become "***". Kept next to the spec so a new
 * secret field is redacted where it is declared.
 */

import type { Plan } from "./plan.ts";

const MASK = "***";

/** `postgres://u:secret@h/db` → `postgres://u:***@h/db`; other strings unchanged. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*):[^@/\s]*@/i, `$1:${MASK}@`);
}

/**
 * The plan with secrets masked, as plain JSON-ready data.
 *
 * @example redactPlan(plan).database.url // "postgres://app:***@10.0.0.7/antenna"
 */
export function redactPlan(plan: Plan): unknown {
  const { database: db, api, lake, source, speed } = plan;
  const alerts = speed.quotaAlerts.outputs;
  return {
    ...plan,
    speed: {
      ...speed,
      quotaAlerts: {
        ...speed.quotaAlerts,
        outputs: {
          ...alerts,
          ...(alerts.kafka
            ? { kafka: { ...alerts.kafka, brokers: alerts.kafka.brokers.map(redactUrl) } }
            : {}),
          ...(alerts.webhook
            ? { webhook: { ...alerts.webhook, url: redactUrl(alerts.webhook.url), secret: MASK } }
            : {}),
        },
      },
    },
    source: { ...source, kafka: { ...source.kafka, brokers: source.kafka.brokers.map(redactUrl) } },
    lake: lake.gcsEndpoint === undefined
      ? lake
      : { ...lake, gcsEndpoint: redactUrl(lake.gcsEndpoint) },
    database: db.url === undefined ? db : { ...db, url: redactUrl(db.url) },
    api: api.token === undefined ? api : { ...api, token: MASK },
  };
}
