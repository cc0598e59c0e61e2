/**
 * Front door of real-time quota alerts (`speed.quota_alerts`):
 * `startQuotaAlerts(deps)` loads the user cache and starts the outbox
 * dispatcher, and returns the three pieces the other layers take: the speed
 * layer's flush participant (detection, exactly once per (email, hour,
 * threshold)), the batch layer's hour participant (confirmation and late
 * alerts) and the live feed of the API's stream. Run `migrate(db)` before.
 *
 * @example
 * const alerts = await startQuotaAlerts({ plan, db });
 * const speed = await startSpeedLayer({ ...deps, participants: [alerts.participant] });
 * const batch = createBatchRunner({ ...deps, participants: [alerts.confirmation] });
 * const app = createApp({ ...deps, alerts: alerts.feed });
 */
import type { Plan } from "../config/plan.ts";
import type { Db } from "../db/db.ts";
import type { HourParticipant } from "../batch/mod.ts";
import { processHolder, type RunHolder } from "../holder.ts";
import { log as rootLog, type Logger } from "../log.ts";
import type { Registry } from "../metrics.ts";
import type { FlushParticipant } from "../speed/mod.ts";
import { createConfirmation } from "./confirm.ts";
import { AlertDetector } from "./detector.ts";
import { Fold, type RaisedAlert } from "./fold.ts";
import { type Dispatcher, startDispatcher } from "./dispatcher.ts";
import { type AlertFeed, LiveFeed } from "./feed.ts";
import { createKafkaOutput } from "./kafka_output.ts";
import type { AlertOutput } from "./output.ts";
import { type AlertTelemetry, alertTelemetry } from "./telemetry.ts";
import { alertJson, type QuotaAlert } from "./types.ts";
import { UserDirectory } from "./users.ts";
import { createWebhookOutput } from "./webhook_output.ts";

export type { AlertFeed } from "./feed.ts";
export type { AlertOutput, Attempt } from "./output.ts";
export type { RaisedAlert } from "./fold.ts";
export { type AlertTelemetry, alertTelemetry } from "./telemetry.ts";
export {
  alertJson,
  type AlertSource,
  deliveryId,
  type OutputName,
  type QuotaAlert,
} from "./types.ts";
export { DELIVERY_HEADER } from "./kafka_output.ts";
export {
  ATTEMPT_HEADER,
  DELIVERY_ID_HEADER,
  SIGNATURE_HEADER,
  signBody,
  verifySignature,
} from "./webhook_output.ts";
export {
  type AlertFilter,
  type AlertRow,
  alertVerdicts,
  type DeliveryState,
  type HourVerdict,
  listAlerts,
  type ListedAlert,
  overQuota,
  type OverQuotaRow,
  toAlert,
  usageOfHour,
  type UsageRow,
} from "./store.ts";

export interface QuotaAlertsDeps {
  readonly plan: Plan;
  readonly db: Db;
  /** Default: the process logger with `component: "quota_alerts"`. */
  readonly log?: Logger;
  /** Default: the process registry. */
  readonly registry?: Registry;
  /** Source topic the detector keeps its clocks under. Default plan.source.kafka.topic. */
  readonly topic?: string;
  /** Replaces the outputs built from the plan (tests). */
  readonly outputs?: readonly AlertOutput[];
  /** How often idle dispatchers and the stream look for alerts. Default 1000 ms. */
  readonly pollMs?: number;
  /** This process as alerts and claims name it. Default host:pid. */
  readonly holder?: RunHolder;
}

export interface QuotaAlerts {
  /** For `startSpeedLayer({ participants })`. */
  readonly participant: FlushParticipant;
  /** For `createBatchRunner({ participants })`. */
  readonly confirmation: HourParticipant;
  /** For the API's stream (`createApp({ alerts })`). */
  readonly feed: AlertFeed;
  /** The outputs alerts are delivered to, by name. */
  readonly outputs: readonly string[];
  /** Reloads user_metadata now (otherwise every `refresh_interval`). */
  refreshUsers(): Promise<void>;
  /** Folds every committed share now, whatever the pacing (tests, a batch run by hand). */
  settle(): Promise<void>;
  /** Stops the user refresh, the dispatcher (deliveries in flight get `deadlineMs`) and the feed. */
  stop(deadlineMs?: number): Promise<void>;
}

/** Crossing events' consume times kept for the delivery histogram, at most. */
const CONSUMED_KEPT = 100_000;

/**
 * Starts quota alerts for `deps.plan` (whose `speed.quotaAlerts.enabled`
 * the caller has checked): loads user_metadata, connects the outputs.
 */
export async function startQuotaAlerts(deps: QuotaAlertsDeps): Promise<QuotaAlerts> {
  const { plan, db } = deps;
  const q = plan.speed.quotaAlerts;
  const log = deps.log ?? rootLog.child({ component: "quota_alerts" });
  const telemetry = alertTelemetry(deps.registry);
  const users = new UserDirectory(db, log, telemetry);
  await users.start(q.refreshIntervalMs);

  let outputs: AlertOutput[];
  try {
    outputs = await openOutputs(deps, log);
  } catch (e) {
    await users.stop();
    throw e;
  }
  const names = outputs.map((o) => o.name);

  const holder = deps.holder ?? processHolder();
  const feed = new LiveFeed({ db, log, telemetry, pollMs: deps.pollMs, self: holder.id });
  // Consume times of this process's crossing events, for the delivery delay histogram.
  const consumed = new Map<number, number>();
  const dispatcher = startDispatcher({
    db,
    outputs,
    log,
    telemetry,
    pollMs: deps.pollMs,
    consumedAt: (id) => consumed.get(id),
    holder,
  });
  const { announce, onRaised } = announcer({ log, telemetry, feed, dispatcher, names, consumed });

  const topic = deps.topic ?? plan.source.kafka.topic;
  const fold = new Fold({
    db,
    thresholds: q.thresholds,
    outputs: names,
    holder,
    topic,
    log,
    onRaised,
    users,
  });
  fold.start();
  const participant = new AlertDetector({
    users,
    allowedLatenessMs: plan.speed.allowedLatenessMs,
    topic,
    holder: holder.id,
    onShare: (share) => fold.add(share),
    onLateSkipped: (n) => telemetry.lateSkipped.inc(undefined, n),
  });
  const confirmation = createConfirmation({
    thresholds: q.thresholds,
    outputs: names,
    raisedBy: holder.id,
    onRaised: announce,
    onJudged: (hour, late, unconfirmed) => logJudged(log, hour, late, unconfirmed),
  });
  logStarted(log, q, names, users.size.devices);
  return {
    participant,
    confirmation,
    feed,
    outputs: names,
    refreshUsers: () => users.refresh(),
    settle: () => fold.settle(),
    async stop(deadlineMs = 2_000) {
      await users.stop();
      // The shares of the speed layer's last flush are folded first (their alerts raised).
      await fold.stop(deadlineMs);
      await dispatcher.stop(deadlineMs);
      await feed.close();
    },
  };
}

function logStarted(
  log: Logger,
  q: QuotaAlertsDeps["plan"]["speed"]["quotaAlerts"],
  names: readonly string[],
  devices: number,
): void {
  log.info("quota alerts started", {
    thresholds: q.thresholds,
    outputs: [...names, ...(q.outputs.stream ? ["stream"] : [])],
    devices,
    refresh_ms: q.refreshIntervalMs,
    ...(q.outputs.kafka ? {} : {
      kafka: "off (disabled, or no Kafka: the source is the simulator); set " +
        "speed.quota_alerts.outputs.kafka.brokers to publish alerts to a topic",
    }),
  });
}

/** The outputs the plan configures (or the test's), connected. */
async function openOutputs(deps: QuotaAlertsDeps, log: Logger): Promise<AlertOutput[]> {
  if (deps.outputs) return [...deps.outputs];
  const { plan } = deps;
  const q = plan.speed.quotaAlerts;
  const outputs: AlertOutput[] = [];
  try {
    if (q.outputs.kafka) {
      outputs.push(
        await createKafkaOutput({
          plan: q.outputs.kafka,
          log,
          createTopic: plan.source.kafka.createTopics,
          partitions: plan.source.kafka.partitions,
        }),
      );
    }
    if (q.outputs.webhook) outputs.push(createWebhookOutput(q.outputs.webhook));
  } catch (e) {
    await Promise.all(outputs.map((o) => o.close().catch(() => {})));
    throw e;
  }
  return outputs;
}

/**
 * What happens to a raised alert, from the fold (`onRaised`, with its
 * crossing event's consume time) or the batch layer (`announce`): counted,
 * logged, published to the stream, and the dispatcher woken.
 */
function announcer(o: {
  log: Logger;
  telemetry: AlertTelemetry;
  feed: LiveFeed;
  dispatcher: Dispatcher;
  names: readonly string[];
  consumed: Map<number, number>;
}) {
  const announce = (alerts: readonly QuotaAlert[]) => {
    for (const a of alerts) {
      o.telemetry.raised.inc({ source: a.source, threshold: a.threshold });
      o.log.info("quota alert", alertJson(a));
    }
    o.feed.publish(alerts);
    if (o.names.length > 0) o.dispatcher.wake();
  };
  const onRaised = (raised: readonly RaisedAlert[]) => {
    const now = Date.now();
    for (const r of raised) {
      o.telemetry.detectionSeconds.observe((now - r.consumedAt) / 1000);
      if (o.names.length === 0) continue;
      o.consumed.set(r.alert.id, r.consumedAt);
      // Oldest first out (a Map keeps insertion order): bounded whatever is delivered.
      if (o.consumed.size > CONSUMED_KEPT) o.consumed.delete(o.consumed.keys().next().value!);
    }
    announce(raised.map((r) => r.alert));
  };
  return { announce, onRaised };
}

function logJudged(log: Logger, hour: number, late: number, unconfirmed: number): void {
  if (late + unconfirmed === 0) return;
  log.info("quota alerts of the hour judged by the batch layer", {
    hour: new Date(hour).toISOString(),
    late,
    unconfirmed,
  });
}
