/**
 * The quota alert detector: a flush participant of the speed layer
 * (speed/participant.ts). It sees every valid event once, in offset order per
 * partition, and notes what known users' events add to their email's hour.
 * In each partition's flush transaction it adds that partition's share to the
 * hour's running usage (`quota_usage`, one upsert for every touched email in
 * (hour, email) order, so concurrent partition transactions queue on each
 * row instead of deadlocking), reads back the total each share landed on,
 * walks the partition's events on top of the total before them and inserts
 * one alert per threshold reached (ON CONFLICT DO NOTHING), with its outbox
 * rows. The usage, the alerts and the partition's offset commit together, so
 * a crash, a replay or a rebalance can neither count an event twice nor lose
 * an alert; the row lock makes the decision on the sum over every partition
 * and instance, never on one partition's share.
 *
 * The pure parts (which events count, where a threshold is reached) are in
 * core/quota_alerts.ts; this file holds the state and the SQL.
 */
import type { Queryable } from "../db/db.ts";
import type { SourcedEvent } from "../core/event.ts";
import { crossings, hourCutoff, reachFloor } from "../core/quota_alerts.ts";
import { HOUR_MS } from "../core/window.ts";
import { intArray, textArray } from "../speed/mod.ts";
import type { FlushParticipant, ParticipantWrite } from "../speed/mod.ts";
import type { QuotaAlert } from "./types.ts";
import type { UserDirectory, UserEntry } from "./users.ts";

/** An alert the detector made durable, with when its crossing event was consumed. */
export interface RaisedAlert {
  readonly alert: QuotaAlert;
  /** Wall time the crossing event was consumed, epoch ms. */
  readonly consumedAt: number;
}

export interface DetectorOptions {
  readonly users: Pick<UserDirectory, "lookup">;
  /** Ascending shares of the quota. */
  readonly thresholds: readonly number[];
  readonly allowedLatenessMs: number;
  /** Source topic (the clocks are kept per topic and partition). */
  readonly topic: string;
  /** Outputs that get an outbox row per alert (kafka, webhook). */
  readonly outputs: readonly string[];
  /** This process (host:pid), recorded as `raised_by`. */
  readonly raisedBy: string;
  /** After the flush transaction committed: never throws. */
  readonly onRaised: (alerts: readonly RaisedAlert[]) => void;
  /** Known users' events too late for their hour, after commit. */
  readonly onLateSkipped?: (events: number) => void;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly clock?: () => number;
}

/** The valid events of one partition since its last take, in offset order. */
class Pending {
  readonly events: SourcedEvent[] = [];
  /** Index of the first event consumed at each `walls` time (ascending). */
  readonly wallFrom: number[] = [];
  readonly walls: number[] = [];
}

/** What a take's counted events of one (hour, email) add up to. */
interface Group {
  readonly hour: number;
  readonly user: UserEntry;
  sum: number;
  events: number;
  /** The usage upsert said this total may reach an open threshold: look at its events. */
  candidate: boolean;
}

const TS = (expr: string) => `(TIMESTAMP 'epoch' + (${expr}) * INTERVAL '1 millisecond')`;
const MS = (expr: string) => `(EXTRACT(EPOCH FROM ${expr}) * 1000)::bigint`;

const CLOCK_SQL = `SELECT clock_ms FROM quota_alert_clocks WHERE topic = $1 AND "partition" = $2`;

const SAVE_CLOCK_SQL = `INSERT INTO quota_alert_clocks AS c (topic, "partition", clock_ms)
  VALUES ($1, $2, $3)
  ON CONFLICT (topic, "partition") DO UPDATE SET clock_ms = GREATEST(c.clock_ms, EXCLUDED.clock_ms)`;

// Rows in (hour, email) order: every transaction takes the row locks in the
// same order. Only totals that may reach an open threshold come back.
// Only totals that may reach an open threshold come back, with their place in the input.
const USAGE_SQL = `WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
      $6::bigint[]) WITH ORDINALITY AS u(h, email, add, quota, events, floor, n)
  ), up AS (
    INSERT INTO quota_usage AS q (hour, email, usage, quota, events, updated_at)
    SELECT ${TS("i.h")}, i.email, i.add, i.quota, i.events, now() FROM input i
    ORDER BY i.h, i.email
    ON CONFLICT (hour, email) DO UPDATE SET usage = q.usage + EXCLUDED.usage,
      quota = EXCLUDED.quota, events = q.events + EXCLUDED.events, updated_at = EXCLUDED.updated_at
    RETURNING q.hour, q.email, q.usage
  )
  SELECT i.n, up.usage FROM up
  JOIN input i ON ${TS("i.h")} = up.hour AND i.email = up.email
  WHERE i.floor IS NOT NULL AND up.usage >= i.floor`;

const ALERTS_SQL = `WITH a AS (
    INSERT INTO quota_alerts (hour, email, threshold, quota, usage, crossed_at, detected_at,
      source, topic, "partition", "offset", consumed_at, raised_by)
    SELECT ${TS("u.h")}, u.email, u.t::numeric, u.quota, u.usage, ${TS("u.c")},
      clock_timestamp(), 'speed', $9, $10, u.o, to_timestamp(u.w / 1000.0), $12
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
      $7::bigint[], $8::bigint[]) AS u(h, email, t, quota, usage, c, o, w)
    ORDER BY u.h, u.email, u.t::numeric
    ON CONFLICT (hour, email, threshold) DO NOTHING
    RETURNING id, hour, email, threshold, detected_at
  ), d AS (
    INSERT INTO quota_alert_deliveries (alert_id, output)
    SELECT a.id, o.output FROM a CROSS JOIN unnest($11::text[]) AS o(output)
  )
  SELECT id, ${MS("hour")} AS h, email, threshold, detected_at FROM a`;

/** How far back the detector remembers which alerts exist (hours before the newest). */
const KNOWN_HOURS = 3;

export class AlertDetector implements FlushParticipant {
  readonly name = "quota_alerts";
  readonly #o: DetectorOptions;
  readonly #clock: () => number;
  readonly #pending = new Map<number, Pending>();
  /** Each partition's clock as of its last committed write (absent: read it from the table). */
  readonly #clocks = new Map<number, number>();
  /** Numbers the takes, for the users' scratch fields. */
  #take = 0;
  /** Wall time of the batch being consumed, read once per batch (a microtask resets it). */
  #wall = 0;
  #wallValid = false;
  readonly #endWall = () => {
    this.#wallValid = false;
  };

  constructor(options: DetectorOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
  }

  // The hot path: one push per event (a batch's events share one wall time);
  // users are looked up per device when the share is written.
  event(e: SourcedEvent): void {
    let b = this.#pending.get(e.partition);
    if (!b) this.#pending.set(e.partition, b = new Pending());
    if (!this.#wallValid) {
      this.#wall = this.#clock();
      this.#wallValid = true;
      queueMicrotask(this.#endWall);
    }
    if (b.walls.at(-1) !== this.#wall) {
      b.wallFrom.push(b.events.length);
      b.walls.push(this.#wall);
    }
    b.events.push(e);
  }

  take(partition: number): ParticipantWrite | undefined {
    const b = this.#pending.get(partition);
    if (!b) return undefined;
    this.#pending.delete(partition);
    return this.#write(partition, b);
  }

  release(partition: number): void {
    this.#pending.delete(partition);
    this.#clocks.delete(partition);
  }

  /** Bit mask of the thresholds (by index) known to have an alert for `user` in `hour`. */
  static #alertedMask(user: UserEntry, hour: number): number {
    return user.alerted?.get(hour) ?? 0;
  }

  #remember(user: UserEntry, hour: number, threshold: number): void {
    const i = this.#o.thresholds.indexOf(threshold);
    if (i < 0) return;
    const known = user.alerted ??= new Map();
    known.set(hour, (known.get(hour) ?? 0) | (1 << i));
    // Only recent hours can still get alerts worth filtering.
    if (known.size > KNOWN_HOURS) known.delete(Math.min(...known.keys()));
  }

  /** Wall time the `i`-th event of `b` was consumed. */
  static #wallOf(b: Pending, i: number): number {
    let lo = 0, hi = b.wallFrom.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (b.wallFrom[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return b.walls[lo];
  }

  /**
   * The counted events of a take summed per (hour, email), each event's
   * group (undefined: not counted, or a device without a user), and the
   * partition's clock after them. The hot loop of the detector: per event a
   * comparison with the hour's cutoff (core/quota_alerts.ts) and one lookup
   * of its device; the sums live on the users' scratch fields.
   */
  #group(b: Pending, clock0: number) {
    const take = ++this.#take;
    const lateness = this.#o.allowedLatenessMs;
    const users = this.#o.users;
    const ev = b.events;
    const of: (Group | undefined)[] = new Array(ev.length);
    const groups: Group[] = [];
    let spill: Map<string, Group> | undefined; // a user with events of two hours in one take
    let from = NaN, to = NaN, cutoff = -Infinity;
    let clock = clock0;
    let skipped = 0;
    for (let i = 0; i < ev.length; i++) {
      const e = ev[i];
      const t = e.timestamp * 1000;
      if (!(t >= from && t < to)) {
        from = Math.floor(t / HOUR_MS) * HOUR_MS;
        to = from + HOUR_MS;
        cutoff = hourCutoff(from, lateness);
      }
      if (clock < cutoff) {
        const user = users.lookup(e.id);
        if (user) {
          let g: Group | undefined;
          if (user.take !== take) {
            user.take = take;
            user.hour = from;
            user.group = g = { hour: from, user, sum: 0, events: 0, candidate: false };
            groups.push(g);
          } else if (user.hour === from) g = user.group as Group;
          else {
            spill ??= new Map();
            const key = `${from}|${user.email}`;
            g = spill.get(key);
            if (!g) {
              spill.set(key, g = { hour: from, user, sum: 0, events: 0, candidate: false });
              groups.push(g);
            }
          }
          g.sum += e.bytes;
          g.events++;
          of[i] = g;
        }
      } else skipped++;
      if (t > clock) clock = t;
    }
    return { groups, of, clock, skipped };
  }

  /** One partition's share of a flush; `write` may run more than once, so it only computes. */
  #write(partition: number, b: Pending): ParticipantWrite {
    const o = this.#o;
    let outcome:
      | {
        clock: number;
        raised: RaisedAlert[];
        existing: { user: UserEntry; hour: number; threshold: number }[];
        raisedBy: UserEntry[];
        skipped: number;
      }
      | undefined;
    return {
      write: async (tx: Queryable) => {
        let clock0 = this.#clocks.get(partition);
        if (clock0 === undefined) {
          const rows = await tx.query<{ clock_ms: number }>(CLOCK_SQL, [o.topic, partition]);
          clock0 = rows.length ? Number(rows[0].clock_ms) : -Infinity;
        }
        const { groups, of, clock, skipped } = this.#group(b, clock0);
        const raised: RaisedAlert[] = [];
        const raisedUsers: UserEntry[] = [];
        const existing: { user: UserEntry; hour: number; threshold: number }[] = [];
        if (groups.length > 0) {
          // PostgreSQL sorts them (ORDER BY in USAGE_SQL): every transaction locks in that order.
          const floors = groups.map((g) => {
            const mask = AlertDetector.#alertedMask(g.user, g.hour);
            const open = o.thresholds.findIndex((_, i) => (mask & (1 << i)) === 0);
            return open < 0 ? null : reachFloor(g.user.quota, o.thresholds[open]);
          });
          const totals = await tx.query<{ n: number; usage: number }>(USAGE_SQL, [
            intArray(groups.map((g) => g.hour)),
            textArray(groups.map((g) => g.user.email)),
            intArray(groups.map((g) => g.sum)),
            intArray(groups.map((g) => g.user.quota)),
            intArray(groups.map((g) => g.events)),
            intArray(floors),
          ]);
          // The events of the candidates, in offset order: one pass over the take.
          const candidates = new Map<Group, number[]>();
          for (const g of groups) g.candidate = false;
          for (const r of totals) {
            const g = groups[Number(r.n) - 1];
            g.candidate = true;
            candidates.set(g, []);
          }
          if (candidates.size > 0) {
            for (let i = 0; i < of.length; i++) {
              const g = of[i];
              if (g?.candidate) candidates.get(g)!.push(i);
            }
          }
          const cols = {
            h: [] as number[],
            email: [] as string[],
            t: [] as string[],
            quota: [] as number[],
            usage: [] as number[],
            c: [] as number[],
            o: [] as number[],
            w: [] as number[],
          };
          const tried: { user: UserEntry; hour: number; threshold: number }[] = [];
          for (const r of totals) {
            const g = groups[Number(r.n) - 1];
            const before = Number(r.usage) - g.sum;
            const idx = candidates.get(g)!;
            const events = idx.map((i) => ({ bytes: b.events[i].bytes, quota: g.user.quota }));
            const mask = AlertDetector.#alertedMask(g.user, g.hour);
            const alerted = (t: number) => (mask & (1 << o.thresholds.indexOf(t))) !== 0;
            for (const x of crossings(before, events, o.thresholds, alerted)) {
              const i = idx[x.index];
              tried.push({ user: g.user, hour: g.hour, threshold: x.threshold });
              cols.h.push(g.hour);
              cols.email.push(g.user.email);
              cols.t.push(String(x.threshold));
              cols.quota.push(x.quota);
              cols.usage.push(x.usage);
              cols.c.push(b.events[i].timestamp * 1000);
              cols.o.push(b.events[i].offset);
              cols.w.push(AlertDetector.#wallOf(b, i));
            }
          }
          if (tried.length > 0) {
            const rows = await tx.query<
              { id: number; h: number; email: string; threshold: number; detected_at: Date }
            >(ALERTS_SQL, [
              intArray(cols.h),
              textArray(cols.email),
              textArray(cols.t),
              intArray(cols.quota),
              intArray(cols.usage),
              intArray(cols.c),
              intArray(cols.o),
              intArray(cols.w),
              o.topic,
              partition,
              textArray([...o.outputs]),
              o.raisedBy,
            ]);
            const inserted = new Map(
              rows.map((r) => [`${Number(r.h)}|${r.email}|${Number(r.threshold)}`, r]),
            );
            for (let k = 0; k < tried.length; k++) {
              const x = tried[k];
              const r = inserted.get(`${x.hour}|${x.user.email}|${x.threshold}`);
              if (!r) {
                existing.push(x); // another partition or instance got there first: it exists
                continue;
              }
              raisedUsers.push(x.user);
              raised.push({
                alert: {
                  id: Number(r.id),
                  email: x.user.email,
                  hour: x.hour,
                  threshold: x.threshold,
                  quota: cols.quota[k],
                  usage: cols.usage[k],
                  crossedAt: cols.c[k],
                  detectedAt: r.detected_at.getTime(),
                  source: "speed",
                  partition,
                  offset: cols.o[k],
                },
                consumedAt: cols.w[k],
              });
            }
          }
        }
        if (Number.isFinite(clock)) await tx.query(SAVE_CLOCK_SQL, [o.topic, partition, clock]);
        outcome = { clock, raised, existing, skipped, raisedBy: raisedUsers };
      },
      committed: () => {
        if (!outcome) return;
        if (Number.isFinite(outcome.clock)) this.#clocks.set(partition, outcome.clock);
        for (const x of outcome.existing) this.#remember(x.user, x.hour, x.threshold);
        outcome.raised.forEach((r, k) =>
          this.#remember(outcome!.raisedBy[k], r.alert.hour, r.alert.threshold)
        );
        if (outcome.skipped > 0) o.onLateSkipped?.(outcome.skipped);
        if (outcome.raised.length > 0) {
          try {
            o.onRaised(outcome.raised);
          } catch {
            // committed() must not throw: the alerts are durable whatever a listener does.
          }
        }
      },
    };
  }
}
