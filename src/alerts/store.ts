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
