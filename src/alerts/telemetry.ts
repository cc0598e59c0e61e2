/**
 * Every metric quota alerts report, declared in one place (names, help,
 * labels) so `/metrics`, the benchmark and the tests read the same names.
 */
import {
  type Counter,
  type Gauge,
  type Histogram,
  type Registry,
  registry as processRegistry,
} from "../metrics.ts";

export interface AlertTelemetry {
  /** Labels: source, threshold. Alerts made durable. */
  readonly raised: Counter;
  /** Labels: output. Alerts an output acknowledged. */
  readonly delivered: Counter;
  /** Labels: output. Attempts that failed (each is retried until the last). */
  readonly attemptErrors: Counter;
  /** Labels: output. Deliveries given up after their last attempt (recorded failures). */
  readonly failures: Counter;
  /** From consuming the crossing event to the alert being durable. */
  readonly detectionSeconds: Histogram;
  /** Labels: output. From consuming the crossing event to the output acknowledging it. */
  readonly deliverySeconds: Histogram;
  /** Events of known users too late to count toward their hour (left to the batch layer). */
  readonly lateSkipped: Counter;
  /** Devices and emails in the user cache. */
  readonly devices: Gauge;
  readonly emails: Gauge;
  /** Clients on the Server-Sent Events stream. */
  readonly streamClients: Gauge;
}

// Detection rides on the flush (1 s by default): finer around it.
const DELAY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60];

/** Registers (or finds) the quota alert metrics in `registry`. */
export function alertTelemetry(registry: Registry = processRegistry): AlertTelemetry {
  return {
    raised: registry.counter(
      "quota_alerts_raised_total",
      "Quota alerts made durable, by source (speed, batch) and threshold.",
    ),
    delivered: registry.counter(
      "quota_alert_deliveries_total",
      "Quota alerts delivered, by output (kafka, webhook).",
    ),
    attemptErrors: registry.counter(
      "quota_alert_delivery_errors_total",
      "Failed delivery attempts of quota alerts, by output; retried with backoff until the last.",
    ),
    failures: registry.counter(
      "quota_alert_delivery_failures_total",
      "Quota alert deliveries given up after their last attempt, by output (see the API).",
    ),
    detectionSeconds: registry.histogram(
      "quota_alert_detection_seconds",
      "From consuming the event that reached a threshold to its alert being durable.",
      DELAY_BUCKETS,
    ),
    deliverySeconds: registry.histogram(
      "quota_alert_delivery_seconds",
      "From consuming the event that reached a threshold to an output acknowledging the alert.",
      DELAY_BUCKETS,
    ),
    lateSkipped: registry.counter(
      "quota_alert_late_skipped_total",
      "Events of known users later than their hour plus the allowed lateness: not counted " +
        "by the speed layer's alerts (the batch layer raises a late alert if they matter).",
    ),
    devices: registry.gauge("quota_alert_devices", "Devices in the quota alerts' user cache."),
    emails: registry.gauge("quota_alert_emails", "Emails (users) in the quota alerts' user cache."),
    streamClients: registry.gauge(
      "quota_alert_stream_clients",
      "Clients connected to the quota alert stream (Server-Sent Events).",
    ),
  };
}
