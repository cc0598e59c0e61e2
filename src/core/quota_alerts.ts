/**
 * The quota alert rules, shared by the speed layer (detection) and the batch
 * layer (confirmation), so the two cannot disagree on what an alert means.
 *
 * - A user (email) **reaches** a threshold t in an hour when their usage is
 *   at least t × quota and above zero: an event that lands exactly on the
 *   quota raises the 100 % alert. The batch layer's breach rule
 *   (core/quota.ts, user_quota_limit) stays strictly greater, so an hour that
 *   ends exactly at the quota has a confirmed 100 % alert and no breach row.
 * - Thresholds have at most 4 decimals (the config linter says so): the
 *   comparison is done on integers, so 0.8 × 5 is 4, not 4.000000000000001.
 * - An event counts toward its hour unless its partition's watermark had
 *   passed the end of that hour by more than the allowed lateness when it
 *   arrived: the speed layer's lateness rule with the hour as the window.
 *   Later events are left to the batch layer, which raises a late alert if
 *   they make a breach the speed layer never saw.
 */
import { HOUR_MS, hourStart } from "./window.ts";

/** Thresholds are compared as integers of 1/10,000. */
const SCALE = 10_000;

function scaled(threshold: number): number {
  return Math.round(threshold * SCALE);
}

/**
 * Whether `usage` reaches `threshold` × `quota` (and is above zero).
 *
 * @example reaches(4, 5, 0.8) // true: 4 >= 0.8 × 5
 * @example reaches(10, 10, 1) // true: exactly at the quota
 */
export function reaches(usage: number, quota: number, threshold: number): boolean {
  if (!(usage > 0)) return false;
  const a = usage * SCALE;
  const b = scaled(threshold) * quota;
  if (Number.isSafeInteger(a) && Number.isSafeInteger(b)) return a >= b;
  return BigInt(Math.round(usage)) * BigInt(SCALE) >=
    BigInt(scaled(threshold)) * BigInt(Math.round(quota));
}

/**
 * The largest integer usage below which `threshold` × `quota` is surely not
 * reached: a filter that may let through a little more, never less.
 */
export function reachFloor(quota: number, threshold: number): number {
  return Math.max(1, Math.floor((scaled(threshold) * quota) / SCALE) - 1);
}

/**
 * Whether an event at `eventMs` counts toward its hour's running usage, given
 * its partition's event-time clock just before it (highest event time seen).
 *
 * @example countsTowardHour(Date.UTC(2026, 0, 1, 10, 59), Date.UTC(2026, 0, 1, 11, 0, 20), 15_000) // true
 */
export function countsTowardHour(eventMs: number, clockMs: number, latenessMs: number): boolean {
  return clockMs < hourCutoff(hourStart(eventMs), latenessMs);
}

/**
 * The clock from which events of the hour starting at `hourMs` no longer
 * count (`countsTowardHour`): the watermark (clock - lateness) has passed the
 * hour's end by the lateness, which is when the speed layer's `classify`
 * calls an event of a window ending there late_dropped. A hot loop compares
 * clocks with it instead of classifying every event.
 */
export function hourCutoff(hourMs: number, latenessMs: number): number {
  // classify(hourMs, HOUR_MS, L, clock - L) is late_dropped iff clock - L >= end + L.
  return hourMs + HOUR_MS + 2 * latenessMs;
}

/** One counted event of an (email, hour), in the order it was applied. */
export interface CountedEvent {
  readonly bytes: number;
  /** The email's quota when the event was consumed. */
  readonly quota: number;
}

/** A threshold reached at one event of a sequence. */
export interface Crossing {
  readonly threshold: number;
  /** Index of the event that reached it. */
  readonly index: number;
  /** Usage including that event. */
  readonly usage: number;
  /** The quota it was judged against (the event's). */
  readonly quota: number;
}

/**
 * The thresholds that events reach, in order, on top of `before` (the usage
 * of the hour before them, summed over every partition). `alerted` tells
 * which thresholds already have an alert. Each quota is the one of its event,
 * so a quota lowered mid-hour applies from the next event on: if the usage is
 * already past the new threshold, that next event raises the alert.
 *
 * @example
 * crossings(70, [{ bytes: 5, quota: 100 }, { bytes: 30, quota: 100 }], [0.8, 1], () => false)
 * // [{ threshold: 0.8, index: 1, usage: 105, quota: 100 }, { threshold: 1, index: 1, usage: 105, quota: 100 }]
 */
export function crossings(
  before: number,
  events: readonly CountedEvent[],
  thresholds: readonly number[],
  alerted: (threshold: number) => boolean,
): Crossing[] {
  const out: Crossing[] = [];
  const open = thresholds.filter((t) => !alerted(t));
  let usage = before;
  for (let i = 0; i < events.length && open.length > 0; i++) {
    usage += events[i].bytes;
    const quota = events[i].quota;
    for (let k = 0; k < open.length; k++) {
      if (!reaches(usage, quota, open[k])) continue;
      out.push({ threshold: open[k], index: i, usage, quota });
      open.splice(k--, 1);
    }
  }
  return out;
}

/** An alert of the hour as the batch layer finds it. */
export interface HourAlert {
  readonly email: string;
  readonly threshold: number;
  readonly source: "speed" | "batch";
}

/** What the batch layer concludes about an hour's alerts at one threshold. */
export interface ThresholdAgreement {
  readonly threshold: number;
  /** Speed alerts of the hour. */
  readonly speedAlerts: number;
  /** Speed alerts the batch usage reaches too. */
  readonly confirmed: number;
  /** Speed alerts the batch usage does not reach (e.g. a quota raised since). */
  readonly unconfirmed: number;
  /** Thresholds the batch usage reaches without a speed alert: batch alerts. */
  readonly late: number;
}

export interface AlertVerdict {
  readonly email: string;
  readonly threshold: number;
  readonly status: "confirmed" | "unconfirmed" | "late";
  /** The batch layer's usage of the email in the hour (0 when none). */
  readonly usage: number;
}

export interface HourReconciliation {
  readonly agreement: ThresholdAgreement[];
  /** One per existing alert, and one per new late alert. */
  readonly verdicts: AlertVerdict[];
  /** Thresholds reached with no alert at all: to raise now, from the batch layer. */
  readonly raise: { email: string; threshold: number; usage: number; quota: number }[];
}

/**
 * Compares an hour's alerts with the batch layer's exact usage and quotas.
 * A speed alert is confirmed when the batch usage reaches its threshold too;
 * a reached threshold without any alert is raised late (source batch); an
 * earlier batch alert (a re-run) stays late while reached. Thresholds are the
 * plan's plus any an existing alert carries. Sorted by email then threshold.
 *
 * @example
 * reconcileHour([0.8, 1], [{ email: "a", threshold: 0.8, source: "speed" }],
 *   new Map([["a", 120]]), new Map([["a", 100]]))
 * // a's 0.8 alert confirmed, a's 1.0 raised late
 */
export function reconcileHour(
  thresholds: readonly number[],
  alerts: readonly HourAlert[],
  usageByEmail: ReadonlyMap<string, number>,
  quotaByEmail: ReadonlyMap<string, number>,
): HourReconciliation {
  const all = [...new Set([...thresholds, ...alerts.map((a) => a.threshold)])].sort((a, b) =>
    a - b
  );
  const byKey = new Map(alerts.map((a) => [`${a.email}\u0000${a.threshold}`, a]));
  const reached = (email: string, t: number) => {
    const q = quotaByEmail.get(email);
    return q !== undefined && reaches(usageByEmail.get(email) ?? 0, q, t);
  };
  const emails = [...new Set([...usageByEmail.keys(), ...alerts.map((a) => a.email)])].sort();
  const agreement = new Map<number, { speed: number; ok: number; no: number; late: number }>(
    all.map((t) => [t, { speed: 0, ok: 0, no: 0, late: 0 }]),
  );
  const verdicts: AlertVerdict[] = [];
  const raise: HourReconciliation["raise"] = [];
  for (const email of emails) {
    const usage = usageByEmail.get(email) ?? 0;
    for (const t of all) {
      const a = byKey.get(`${email}\u0000${t}`);
      const r = reached(email, t);
      const g = agreement.get(t)!;
      if (a?.source === "speed") {
        g.speed++;
        if (r) g.ok++;
        else g.no++;
        verdicts.push({ email, threshold: t, status: r ? "confirmed" : "unconfirmed", usage });
      } else if (a) {
        if (r) g.late++;
        else g.no++;
        verdicts.push({ email, threshold: t, status: r ? "late" : "unconfirmed", usage });
      } else if (r && thresholds.includes(t)) {
        g.late++;
        verdicts.push({ email, threshold: t, status: "late", usage });
        raise.push({ email, threshold: t, usage, quota: quotaByEmail.get(email)! });
      }
    }
  }
  return {
    agreement: all.map((t) => {
      const g = agreement.get(t)!;
      return {
        threshold: t,
        speedAlerts: g.speed,
        confirmed: g.ok,
        unconfirmed: g.no,
        late: g.late,
      };
    }),
    verdicts,
    raise,
  };
}
