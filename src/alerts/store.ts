/**
 * Reading `quota_alerts` and its outbox: one column list and one row
 * conversion for the dispatcher, the stream and the API, and the outbox's
 * claim and record statements (sql/009_quota_alerts.sql says how the outbox
 * works).
 */
import type { Queryable } from "../db/db.ts";
import { intArray, textArray } from "./_sql.ts";
import type { AlertSource, OutputName, QuotaAlert } from "./types.ts";

/** The columns `toAlert` reads, qualified by `a`. */
export const ALERT_COLUMNS = `a.id, a.hour, a.email, a.threshold, a.quota, a.usage, a.crossed_at,
  a.detected_at, a.source, a."partition", a."offset"`;

export interface AlertRow {
  id: number;
  hour: Date;
  email: string;
  threshold: number;
  quota: number;
  usage: number;
  crossed_at: Date | null;
  detected_at: Date;
  source: AlertSource;
  partition: number | null;
  offset: number | null;
}

export function toAlert(r: AlertRow): QuotaAlert {
  return {
    id: Number(r.id),
    email: r.email,
    hour: r.hour.getTime(),
    threshold: Number(r.threshold),
    quota: Number(r.quota),
    usage: Number(r.usage),
    crossedAt: r.crossed_at?.getTime() ?? null,
    detectedAt: r.detected_at.getTime(),
    source: r.source,
    ...(r.partition !== null ? { partition: Number(r.partition), offset: Number(r.offset) } : {}),
  };
}

/** Alerts with an id above `afterId`, oldest first (the stream's replay). */
export async function alertsAfter(
  db: Queryable,
  afterId: number,
  limit: number,
): Promise<QuotaAlert[]> {
  const rows = await db.query<AlertRow>(
    `SELECT ${ALERT_COLUMNS} FROM quota_alerts a WHERE a.id > $1 ORDER BY a.id LIMIT $2`,
    [afterId, limit],
  );
  return rows.map(toAlert);
}

/**
 * Alerts other processes than `self` made durable at or after `sinceMs` (the
 * stream's poll), oldest first.
 */
export async function alertsDetectedSince(
  db: Queryable,
  sinceMs: number,
  self: string,
): Promise<QuotaAlert[]> {
  const rows = await db.query<AlertRow>(
    `SELECT ${ALERT_COLUMNS} FROM quota_alerts a
     WHERE a.detected_at >= $1 AND a.raised_by IS DISTINCT FROM $2
     ORDER BY a.id LIMIT 10000`,
    [new Date(sinceMs), self],
  );
  return rows.map(toAlert);
}

/** One claimed delivery of an alert to an output. */
export interface Claimed {
  readonly alert: QuotaAlert;
  /** This attempt's number (1-based). */
  readonly attempt: number;
  /** An earlier attempt may have reached the output without its outcome being recorded. */
  readonly inDoubt: boolean;
  /** When the earlier attempt was claimed (epoch ms), if any. */
  readonly previousClaimMs: number | null;
}

/**
 * Claims up to `limit` due deliveries of `output`: each gets its attempt
 * counted and its next attempt pushed `leaseMs` ahead, so no other
 * dispatcher takes it meanwhile and a crash makes it due again.
 */
export async function claimDeliveries(
  db: Queryable,
  output: OutputName,
  limit: number,
  leaseMs: number,
  /** This process (host:pid): a claim of a process found gone is taken over at once. */
  holder: string,
): Promise<Claimed[]> {
  const rows = await db.query<
    AlertRow & { attempts: number; was_in_doubt: boolean; was_claimed_at: Date | null }
  >(
    `UPDATE quota_alert_deliveries d
     SET attempts = d.attempts + 1, claimed_at = now(), claimed_by = $4, in_doubt = true,
       next_attempt_at = now() + $3::bigint * interval '1 millisecond'
     FROM (
       SELECT alert_id, output, in_doubt AS was_in_doubt, claimed_at AS was_claimed_at
       FROM quota_alert_deliveries
       WHERE output = $1 AND state = 'pending' AND next_attempt_at <= now()
       ORDER BY next_attempt_at, alert_id
       LIMIT $2
       FOR UPDATE SKIP LOCKED
     ) s, quota_alerts a
     WHERE d.alert_id = s.alert_id AND d.output = s.output AND a.id = d.alert_id
     RETURNING ${ALERT_COLUMNS}, d.attempts, s.was_in_doubt, s.was_claimed_at`,
    [output, limit, leaseMs, holder],
  );
  return rows.map((r) => ({
    alert: toAlert(r),
    attempt: Number(r.attempts),
    inDoubt: r.was_in_doubt,
    previousClaimMs: r.was_claimed_at?.getTime() ?? null,
  })).sort((a, b) => a.alert.id - b.alert.id);
}

/** What became of one claimed attempt. */
export type Outcome =
  | { readonly kind: "delivered" }
  | { readonly kind: "retry"; readonly delayMs: number; readonly error: string }
  | { readonly kind: "failed"; readonly error: string };

/**
 * "The row is still pending", written so that it does not imply the due
 * index's predicate (state = 'pending'; the CHECK allows only these three
 * states). Just after a fold inserted thousands of alerts, the table's
 * statistics still say it is tiny, and the generic plan postgres.js's
 * prepared statement gets after five runs then read every due row of the
 * output through that index once per recorded outcome (2.5 s for 500 of
 * 30,000); the primary key finds each row.
 */
const STILL_PENDING = "d.state <> 'delivered' AND d.state <> 'failed'";

/**
 * Records the outcomes of claimed attempts. A row is only changed while it
 * still carries the attempt number that was claimed: a dispatcher whose
 * lease ran out does not overwrite the next attempt's record.
 */
export async function recordOutcomes(
  db: Queryable,
  output: OutputName,
  done: readonly { claimed: Claimed; outcome: Outcome }[],
  /** Whether a failed attempt may still have reached the output (Kafka: yes). */
  failureInDoubt: boolean,
): Promise<void> {
  const ok = done.filter((d) => d.outcome.kind === "delivered");
  const retry = done.filter((d) => d.outcome.kind === "retry");
  const failed = done.filter((d) => d.outcome.kind === "failed");
  if (ok.length) {
    await db.query(
      `UPDATE quota_alert_deliveries d SET state = 'delivered', delivered_at = now(),
         in_doubt = false, last_error = NULL, claimed_by = NULL
       FROM unnest($2::bigint[], $3::int[]) AS u(id, attempts)
       WHERE d.output = $1 AND d.alert_id = u.id AND d.attempts = u.attempts
         AND ${STILL_PENDING}`,
      [
        output,
        intArray(ok.map((d) => d.claimed.alert.id)),
        intArray(ok.map((d) => d.claimed.attempt)),
      ],
    );
  }
  if (retry.length) {
    await db.query(
      `UPDATE quota_alert_deliveries d
       SET next_attempt_at = now() + u.delay * interval '1 millisecond', last_error = u.err,
         in_doubt = $5, claimed_by = NULL
       FROM unnest($2::bigint[], $3::int[], $4::text[], $6::bigint[]) AS u(id, attempts, err, delay)
       WHERE d.output = $1 AND d.alert_id = u.id AND d.attempts = u.attempts
         AND ${STILL_PENDING}`,
      [
        output,
        intArray(retry.map((d) => d.claimed.alert.id)),
        intArray(retry.map((d) => d.claimed.attempt)),
        textArray(retry.map((d) => (d.outcome as { error: string }).error)),
        failureInDoubt,
        intArray(retry.map((d) => (d.outcome as { delayMs: number }).delayMs)),
      ],
    );
  }
  if (failed.length) {
    await db.query(
      `UPDATE quota_alert_deliveries d SET state = 'failed', last_error = u.err, in_doubt = $5,
         claimed_by = NULL
       FROM unnest($2::bigint[], $3::int[], $4::text[]) AS u(id, attempts, err)
       WHERE d.output = $1 AND d.alert_id = u.id AND d.attempts = u.attempts
         AND ${STILL_PENDING}`,
      [
        output,
        intArray(failed.map((d) => d.claimed.alert.id)),
        intArray(failed.map((d) => d.claimed.attempt)),
        textArray(failed.map((d) => (d.outcome as { error: string }).error)),
        failureInDoubt,
      ],
    );
  }
}

/** Processes holding claims of `output` in flight, other than `self`. */
export async function claimHolders(
  db: Queryable,
  output: OutputName,
  self: string,
): Promise<string[]> {
  const rows = await db.query<{ claimed_by: string }>(
    `SELECT DISTINCT claimed_by FROM quota_alert_deliveries
     WHERE output = $1 AND state = 'pending' AND claimed_by IS NOT NULL AND claimed_by <> $2`,
    [output, self],
  );
  return rows.map((r) => r.claimed_by);
}

/** Makes the claims of a process that is gone due now (their attempt stays in doubt). */
export async function releaseClaims(
  db: Queryable,
  output: OutputName,
  holder: string,
): Promise<number> {
  const rows = await db.query(
    `UPDATE quota_alert_deliveries SET next_attempt_at = now(), claimed_by = NULL
     WHERE output = $1 AND claimed_by = $2 AND state = 'pending'
     RETURNING alert_id`,
    [output, holder],
  );
  return rows.length;
}

/** Alerts of the hours from `fromHour` on, with an id above `afterId`, oldest first (the stream's catch-up). */
export async function alertsOfHoursFrom(
  db: Queryable,
  fromHour: number,
  afterId: number,
  limit: number,
): Promise<QuotaAlert[]> {
  const rows = await db.query<AlertRow>(
    `SELECT ${ALERT_COLUMNS} FROM quota_alerts a
     WHERE a.hour >= $1::timestamp AND a.id > $2 ORDER BY a.id LIMIT $3`,
    [new Date(fromHour), afterId, limit],
  );
  return rows.map(toAlert);
}

/** A delivery of an alert to one output, as the API lists it. */
export interface DeliveryState {
  readonly state: string;
  readonly attempts: number;
  readonly lastError: string | null;
  readonly deliveredAt: number | null;
}

/** An alert with the batch layer's verdict and its deliveries by output. */
export interface ListedAlert {
  readonly alert: QuotaAlert;
  readonly batch: { readonly status: string; readonly usage: number } | null;
  readonly deliveries: Readonly<Record<string, DeliveryState>>;
}

export interface AlertFilter {
  /** Hours from (inclusive), epoch ms of an hour start. */
  readonly fromHour: number;
  /** Hours before (exclusive). */
  readonly to: number;
  readonly email?: string;
  readonly source?: AlertSource;
  /** Only alerts with a delivery in this state. */
  readonly delivery?: string;
  readonly limit: number;
}

const LIST_SQL = `SELECT ${ALERT_COLUMNS}, a.batch_status, a.batch_usage,
    (SELECT COALESCE(json_agg(json_build_object('output', d.output, 'state', d.state,
        'attempts', d.attempts, 'last_error', d.last_error, 'delivered_at', d.delivered_at)
        ORDER BY d.output), '[]')::text
     FROM quota_alert_deliveries d WHERE d.alert_id = a.id) AS deliveries
  FROM quota_alerts a
  WHERE a.hour >= $1::timestamp AND a.hour < $2::timestamp
    AND ($3::text IS NULL OR a.email = $3)
    AND ($4::text IS NULL OR a.source = $4)
    AND ($5::text IS NULL OR EXISTS (
      SELECT 1 FROM quota_alert_deliveries x WHERE x.alert_id = a.id AND x.state = $5))
  ORDER BY a.id
  LIMIT $6`;

interface ListRow extends AlertRow {
  batch_status: string | null;
  batch_usage: number | null;
  deliveries: string;
}

/** Alerts of a range of hours with their verdict and deliveries, oldest first. */
export async function listAlerts(db: Queryable, f: AlertFilter): Promise<ListedAlert[]> {
  const rows = await db.query<ListRow>(LIST_SQL, [
    new Date(f.fromHour),
    new Date(f.to),
    f.email ?? null,
    f.source ?? null,
    f.delivery ?? null,
    f.limit,
  ]);
  return rows.map((r) => ({
    alert: toAlert(r),
    batch: r.batch_status === null
      ? null
      : { status: r.batch_status, usage: Number(r.batch_usage) },
    deliveries: Object.fromEntries(
      (JSON.parse(r.deliveries) as {
        output: string;
        state: string;
        attempts: number;
        last_error: string | null;
        delivered_at: string | null;
      }[]).map((d) => [d.output, {
        state: d.state,
        attempts: d.attempts,
        lastError: d.last_error,
        deliveredAt: d.delivered_at === null ? null : Date.parse(d.delivered_at),
      }]),
    ),
  }));
}

/** The batch layer's verdict on an hour's alerts at one threshold. */
export interface HourVerdict {
  readonly hour: number;
  readonly threshold: number;
  readonly speedAlerts: number;
  readonly confirmed: number;
  readonly unconfirmed: number;
  readonly late: number;
  readonly runId: string | null;
  readonly computedAt: number;
}

/** quota_alert_reconciliation of the hours in `fromHour`..`to`, by hour and threshold. */
export async function alertVerdicts(
  db: Queryable,
  fromHour: number,
  to: number,
): Promise<HourVerdict[]> {
  const rows = await db.query<Record<string, unknown>>(
    `SELECT hour, threshold, speed_alerts, confirmed, unconfirmed, late, run_id, computed_at
     FROM quota_alert_reconciliation
     WHERE hour >= $1::timestamp AND hour < $2::timestamp
     ORDER BY hour, threshold`,
    [new Date(fromHour), new Date(to)],
  );
  return rows.map((r) => ({
    hour: (r.hour as Date).getTime(),
    threshold: Number(r.threshold),
    speedAlerts: Number(r.speed_alerts),
    confirmed: Number(r.confirmed),
    unconfirmed: Number(r.unconfirmed),
    late: Number(r.late),
    runId: r.run_id === null ? null : String(r.run_id),
    computedAt: (r.computed_at as Date).getTime(),
  }));
}

/** One user's running usage of an hour (quota_usage). */
export interface UsageRow {
  readonly hour: number;
  readonly email: string;
  readonly usage: number;
  readonly quota: number;
  readonly updatedAt: number;
}

/**
 * The users' running usage of `hour` (default: the newest hour with usage),
 * nearest to their quota first.
 */
export async function usageOfHour(
  db: Queryable,
  o: { hour?: number; email?: string; limit: number },
): Promise<UsageRow[]> {
  const rows = await db.query<
    { hour: Date; email: string; usage: unknown; quota: unknown; updated_at: Date }
  >(
    `SELECT u.hour, u.email, u.usage, u.quota, u.updated_at
     FROM quota_usage u
     WHERE u.hour = COALESCE($1::timestamp, (SELECT max(hour) FROM quota_usage))
       AND ($2::text IS NULL OR u.email = $2)
     ORDER BY CASE WHEN u.quota > 0 THEN u.usage::float8 / u.quota END DESC NULLS LAST, u.email
     LIMIT $3`,
    [o.hour === undefined ? null : new Date(o.hour), o.email ?? null, o.limit],
  );
  return rows.map((r) => ({
    hour: r.hour.getTime(),
    email: r.email,
    usage: Number(r.usage),
    quota: Number(r.quota),
    updatedAt: r.updated_at.getTime(),
  }));
}

/** A user over their quota in an hour, from the batch layer or the running usage. */
export interface OverQuotaRow {
  readonly email: string;
  readonly usage: number;
  readonly quota: number;
  /** Start of the hour, epoch ms. */
  readonly hour: number;
  /** `batch` where the hour's batch is current, else `speed` (the running usage). */
  readonly source: "batch" | "speed";
}

// Two texts, so the planner sees `email = $3` when a user is given (the email indexes).
const OVER_QUOTA_SQL = `SELECT email, usage, quota, timestamp, source FROM users_over_quota
  WHERE timestamp >= $1::timestamp AND timestamp < $2::timestamp
  ORDER BY timestamp, usage DESC, email LIMIT 10000`;
const OVER_QUOTA_OF_SQL = `SELECT email, usage, quota, timestamp, source FROM users_over_quota
  WHERE timestamp >= $1::timestamp AND timestamp < $2::timestamp AND email = $3
  ORDER BY timestamp LIMIT 10000`;

/**
 * Users over their quota in the hours of [`from`, `to`) (at most 10,000),
 * optionally one of them: the users_over_quota view (009), which serves
 * user_quota_limit where the hour's batch is current and the running usage
 * above the quota otherwise, so a breach shows while its hour runs.
 */
export async function overQuota(
  db: Queryable,
  from: number,
  to: number,
  email?: string,
): Promise<OverQuotaRow[]> {
  const rows = await db.query<
    { email: string; usage: unknown; quota: unknown; timestamp: Date; source: "batch" | "speed" }
  >(
    email === undefined ? OVER_QUOTA_SQL : OVER_QUOTA_OF_SQL,
    email === undefined ? [new Date(from), new Date(to)] : [new Date(from), new Date(to), email],
  );
  return rows.map((r) => ({
    email: r.email,
    usage: Number(r.usage),
    quota: Number(r.quota),
    hour: r.timestamp.getTime(),
    source: r.source,
  }));
}
