/**
 * The shapes of quota alerts as the rest of the process sees them, and the
 * one JSON form every output carries (Kafka, webhook, the API and its
 * stream), so a receiver reads the same record wherever it comes from.
 */

/** Which layer raised an alert. */
export type AlertSource = "speed" | "batch";

/** An alert as stored in `quota_alerts`. Times are epoch ms. */
export interface QuotaAlert {
  readonly id: number;
  readonly email: string;
  /** Start of the event-time UTC hour. */
  readonly hour: number;
  readonly threshold: number;
  readonly quota: number;
  /** Usage of the hour including the crossing event (batch: the hour's exact usage). */
  readonly usage: number;
  /** Event time of the crossing event; null for batch alerts (the hour is judged whole). */
  readonly crossedAt: number | null;
  /** When the alert was made durable. */
  readonly detectedAt: number;
  readonly source: AlertSource;
  /** The crossing event (speed alerts). */
  readonly partition?: number;
  readonly offset?: number;
}

/** The outputs an alert is delivered to through the outbox. */
export type OutputName = "kafka" | "webhook";

/** The stable id of one alert's delivery to one output: receivers dedupe by it. */
export function deliveryId(alertId: number, output: OutputName): string {
  return `quota-alert-${alertId}-${output}`;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * The alert as JSON (snake_case, ISO-8601 UTC times, `id` for ordering).
 *
 * @example alertJson(a) // { id: 7, email: "user5@example.com", hour: "2026-11-28T10:00:00.000Z", threshold: 0.8, ... }
 */
export function alertJson(a: QuotaAlert): Record<string, unknown> {
  return {
    id: a.id,
    email: a.email,
    hour: iso(a.hour),
    threshold: a.threshold,
    quota: a.quota,
    usage: a.usage,
    crossed_at: iso(a.crossedAt),
    detected_at: iso(a.detectedAt),
    source: a.source,
    ...(a.partition !== undefined ? { partition: a.partition, offset: a.offset } : {}),
  };
}
