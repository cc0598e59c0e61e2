/**
 * The batch layer's side of quota alerts: a participant of the hour's write
 * (batch/participant.ts). With the hour's exact usage and quotas it judges
 * every alert of the hour (core/quota_alerts.ts reconcileHour), raises a late
 * alert (source batch, through the same outbox) for every threshold reached
 * without one — e.g. a breach made of events the speed layer dropped as too
 * late — and replaces the hour's agreement in quota_alert_reconciliation, all
 * in the hour's transaction. A re-run of the hour judges again.
 */
import type { Queryable } from "../db/db.ts";
import type { HourParticipant, HourTotals, HourWrite } from "../batch/mod.ts";
import { reconcileHour } from "../core/quota_alerts.ts";
import { intArray, textArray } from "./_sql.ts";
import type { QuotaAlert } from "./types.ts";

export interface ConfirmOptions {
  readonly thresholds: readonly number[];
  readonly outputs: readonly string[];
  /** This process (host:pid), recorded as `raised_by`. */
  readonly raisedBy: string;
  /** Late alerts made durable, after the hour's transaction committed. */
  readonly onRaised: (alerts: readonly QuotaAlert[]) => void;
  /** The hour's agreement, after commit (for the log). */
  readonly onJudged?: (hour: number, late: number, unconfirmed: number) => void;
}

const HOUR_ALERTS_SQL =
  `SELECT email, threshold, source FROM quota_alerts WHERE hour = $1::timestamp`;

const RAISE_SQL = `WITH a AS (
    INSERT INTO quota_alerts (hour, email, threshold, quota, usage, source, batch_status,
      batch_usage, batch_run_id, raised_by)
    SELECT $1::timestamp, u.email, u.t::numeric, u.quota, u.usage, 'batch', 'late', u.usage, $6,
      $8
    FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS u(email, t, quota, usage)
    ORDER BY u.email, u.t::numeric
    ON CONFLICT (hour, email, threshold) DO NOTHING
    RETURNING id, email, threshold, quota, usage, detected_at
  ), d AS (
    INSERT INTO quota_alert_deliveries (alert_id, output)
    SELECT a.id, o.output FROM a CROSS JOIN unnest($7::text[]) AS o(output)
  )
  SELECT * FROM a`;

// The verdict follows the row that exists, whichever layer raised it.
const JUDGE_SQL = `UPDATE quota_alerts a SET
    batch_status = CASE
      WHEN u.reached AND a.source = 'speed' THEN 'confirmed'
      WHEN u.reached THEN 'late'
      ELSE 'unconfirmed' END,
    batch_usage = u.usage, batch_run_id = $5
  FROM unnest($2::text[], $3::text[], $4::bigint[], $6::bool[]) AS u(email, t, usage, reached)
  WHERE a.hour = $1::timestamp AND a.email = u.email AND a.threshold = u.t::numeric`;

// Counted from the table as it now is, so the agreement matches the verdicts.
const AGREEMENT_SQL = `INSERT INTO quota_alert_reconciliation
    (hour, threshold, speed_alerts, confirmed, unconfirmed, late, run_id, computed_at)
  SELECT $1::timestamp, t.t, count(a.id) FILTER (WHERE a.source = 'speed'),
    count(a.id) FILTER (WHERE a.batch_status = 'confirmed'),
    count(a.id) FILTER (WHERE a.batch_status = 'unconfirmed'),
    count(a.id) FILTER (WHERE a.batch_status = 'late'), $3, now()
  FROM (SELECT DISTINCT x::numeric AS t FROM unnest($2::text[]) AS x
        UNION SELECT threshold FROM quota_alerts WHERE hour = $1::timestamp) t
  LEFT JOIN quota_alerts a ON a.hour = $1::timestamp AND a.threshold = t.t
  GROUP BY t.t`;

// A Date binds to $n::timestamp as its UTC wall clock on both backends (as batch/hours.ts).
const sqlHour = (ms: number) => new Date(ms);

export function createConfirmation(o: ConfirmOptions): HourParticipant {
  return {
    name: "quota_alerts",
    take(totals: HourTotals): HourWrite {
      let raised: QuotaAlert[] = [];
      let late = 0, unconfirmed = 0;
      return {
        async write(tx: Queryable) {
          const h = sqlHour(totals.hour);
          const existing = await tx.query<{ email: string; threshold: number; source: string }>(
            HOUR_ALERTS_SQL,
            [h],
          );
          const rec = reconcileHour(
            o.thresholds,
            existing.map((r) => ({
              email: r.email,
              threshold: Number(r.threshold),
              source: r.source === "speed" ? "speed" : "batch",
            })),
            totals.usageByEmail,
            totals.quotaByEmail,
          );
          raised = await raiseLate(tx, o, totals, rec.raise);
          await judge(tx, totals, rec.verdicts);
          await tx.query("DELETE FROM quota_alert_reconciliation WHERE hour = $1::timestamp", [h]);
          await tx.query(AGREEMENT_SQL, [h, textArray(o.thresholds.map(String)), totals.runId]);
          late = rec.agreement.reduce((n, a) => n + a.late, 0);
          unconfirmed = rec.agreement.reduce((n, a) => n + a.unconfirmed, 0);
        },
        committed() {
          o.onJudged?.(totals.hour, late, unconfirmed);
          if (raised.length === 0) return;
          try {
            o.onRaised(raised);
          } catch {
            // Durable already; a listener's fault must not fail the hour.
          }
        },
      };
    },
  };
}

type Reconciled = ReturnType<typeof reconcileHour>;

/** Late alerts (source batch) for thresholds reached without one, with their outbox rows. */
async function raiseLate(
  tx: Queryable,
  o: ConfirmOptions,
  totals: HourTotals,
  raise: Reconciled["raise"],
): Promise<QuotaAlert[]> {
  if (raise.length === 0) return [];
  const rows = await tx.query<{
    id: number;
    email: string;
    threshold: number;
    quota: number;
    usage: number;
    detected_at: Date;
  }>(RAISE_SQL, [
    sqlHour(totals.hour),
    textArray(raise.map((r) => r.email)),
    textArray(raise.map((r) => String(r.threshold))),
    intArray(raise.map((r) => r.quota)),
    intArray(raise.map((r) => r.usage)),
    totals.runId,
    textArray([...o.outputs]),
    o.raisedBy,
  ]);
  return rows.map((r) => ({
    id: Number(r.id),
    email: r.email,
    hour: totals.hour,
    threshold: Number(r.threshold),
    quota: Number(r.quota),
    usage: Number(r.usage),
    crossedAt: null,
    detectedAt: r.detected_at.getTime(),
    source: "batch",
  }));
}

/** Each existing alert's verdict, with the exact usage. */
async function judge(tx: Queryable, totals: HourTotals, judged: Reconciled["verdicts"]) {
  if (judged.length === 0) return;
  await tx.query(JUDGE_SQL, [
    sqlHour(totals.hour),
    textArray(judged.map((v) => v.email)),
    textArray(judged.map((v) => String(v.threshold))),
    intArray(judged.map((v) => v.usage)),
    totals.runId,
    `{${judged.map((v) => v.status !== "unconfirmed").join(",")}}`,
  ]);
}
