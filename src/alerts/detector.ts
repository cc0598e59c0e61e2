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
import { countsTowardHour, crossings, reachFloor } from "../core/quota_alerts.ts";
import { hourStart } from "../core/window.ts";
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
  /** After the flush transaction committed: never throws. */
  readonly onRaised: (alerts: readonly RaisedAlert[]) => void;
  /** Known users' events too late for their hour, after commit. */
  readonly onLateSkipped?: (events: number) => void;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly clock?: () => number;
}

/** Known users' events of one partition since its last take, as columns. */
class Pending {
  readonly users: UserEntry[] = [];
  readonly bytes: number[] = [];
  readonly ts: number[] = [];
  /** The partition's clock over this buffer's earlier events (-Infinity: none). */
  readonly before: number[] = [];
  readonly wall: number[] = [];
  readonly offsets: number[] = [];
  /** Highest event time of every valid event, known user or not. */
  maxTs = -Infinity;
}

interface Group {
  readonly hour: number;
  readonly email: string;
  /** The latest event's user (its quota is the one stored). */
  user: UserEntry;
  readonly idx: number[];
  sum: number;
  minQuota: number;
}

const TS = (expr: string) => `(TIMESTAMP 'epoch' + (${expr}) * INTERVAL '1 millisecond')`;
const MS = (expr: string) => `(EXTRACT(EPOCH FROM ${expr}) * 1000)::bigint`;

const CLOCK_SQL = `SELECT clock_ms FROM quota_alert_clocks WHERE topic = $1 AND "partition" = $2`;

const SAVE_CLOCK_SQL = `INSERT INTO quota_alert_clocks AS c (topic, "partition", clock_ms)
  VALUES ($1, $2, $3)
  ON CONFLICT (topic, "partition") DO UPDATE SET clock_ms = GREATEST(c.clock_ms, EXCLUDED.clock_ms)`;

// Rows in (hour, email) order: every transaction takes the row locks in the
// same order. Only totals that may reach an open threshold come back.
const USAGE_SQL = `WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
      $6::bigint[]) AS u(h, email, add, quota, events, floor)
  ), up AS (
    INSERT INTO quota_usage AS q (hour, email, usage, quota, events, updated_at)
    SELECT ${TS("i.h")}, i.email, i.add, i.quota, i.events, now() FROM input i
    ORDER BY i.h, i.email
    ON CONFLICT (hour, email) DO UPDATE SET usage = q.usage + EXCLUDED.usage,
      quota = EXCLUDED.quota, events = q.events + EXCLUDED.events, updated_at = EXCLUDED.updated_at
    RETURNING q.hour, q.email, q.usage
  )
  SELECT ${MS("up.hour")} AS h, up.email, up.usage FROM up
  JOIN input i ON ${TS("i.h")} = up.hour AND i.email = up.email
  WHERE i.floor IS NOT NULL AND up.usage >= i.floor`;

const ALERTS_SQL = `WITH a AS (
    INSERT INTO quota_alerts (hour, email, threshold, quota, usage, crossed_at, detected_at,
      source, topic, "partition", "offset", consumed_at)
    SELECT ${TS("u.h")}, u.email, u.t::numeric, u.quota, u.usage, ${TS("u.c")},
      clock_timestamp(), 'speed', $9, $10, u.o, to_timestamp(u.w / 1000.0)
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

const keyOf = (email: string, threshold: number) => `${email}\u0000${threshold}`;

/** How far back the detector remembers which alerts exist (hours before the newest). */
const KNOWN_HOURS = 3;

export class AlertDetector implements FlushParticipant {
  readonly name = "quota_alerts";
  readonly #o: DetectorOptions;
  readonly #clock: () => number;
  readonly #pending = new Map<number, Pending>();
  /** Each partition's clock as of its last committed write (absent: read it from the table). */
  readonly #clocks = new Map<number, number>();
  /** hour → email/threshold keys known to have an alert (a filter only: the table decides). */
  readonly #known = new Map<number, Set<string>>();
  #newestHour = -Infinity;

  constructor(options: DetectorOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
  }

  event(e: SourcedEvent): void {
    let b = this.#pending.get(e.partition);
    if (!b) this.#pending.set(e.partition, b = new Pending());
    const t = e.timestamp * 1000;
    const user = this.#o.users.lookup(e.id);
    if (user) {
      b.users.push(user);
      b.bytes.push(e.bytes);
      b.ts.push(t);
      b.before.push(b.maxTs);
      b.wall.push(this.#clock());
      b.offsets.push(e.offset);
    }
    if (t > b.maxTs) b.maxTs = t;
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

  #alerted(hour: number, email: string, threshold: number): boolean {
    return this.#known.get(hour)?.has(keyOf(email, threshold)) ?? false;
  }

  #remember(hour: number, keys: Iterable<string>): void {
    let set = this.#known.get(hour);
    if (!set) this.#known.set(hour, set = new Set());
    for (const k of keys) set.add(k);
    if (hour > this.#newestHour) {
      this.#newestHour = hour;
      for (const h of this.#known.keys()) {
        if (h < hour - KNOWN_HOURS * 3_600_000) this.#known.delete(h);
      }
    }
  }

  /** One partition's share of a flush; `write` may run more than once, so it only computes. */
  #write(partition: number, b: Pending): ParticipantWrite {
    const o = this.#o;
    let outcome:
      | {
        clock: number;
        raised: RaisedAlert[];
        existing: Map<number, string[]>;
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
        const groups = new Map<number, Map<string, Group>>();
        let skipped = 0;
        for (let i = 0; i < b.ts.length; i++) {
          const clock = Math.max(clock0, b.before[i]);
          if (!countsTowardHour(b.ts[i], clock, o.allowedLatenessMs)) {
            skipped++;
            continue;
          }
          const hour = hourStart(b.ts[i]);
          const user = b.users[i];
          let byEmail = groups.get(hour);
          if (!byEmail) groups.set(hour, byEmail = new Map());
          let g = byEmail.get(user.email);
          if (!g) {
            byEmail.set(
              user.email,
              g = { hour, email: user.email, user, idx: [], sum: 0, minQuota: user.quota },
            );
          }
          g.user = user;
          g.idx.push(i);
          g.sum += b.bytes[i];
          if (user.quota < g.minQuota) g.minQuota = user.quota;
        }
        const list: Group[] = [];
        for (const h of [...groups.keys()].sort((x, y) => x - y)) {
          const byEmail = groups.get(h)!;
          for (const email of [...byEmail.keys()].sort()) list.push(byEmail.get(email)!);
        }
        const raised: RaisedAlert[] = [];
        const existing = new Map<number, string[]>();
        if (list.length > 0) {
          const floors = list.map((g) => {
            const open = o.thresholds.find((t) => !this.#alerted(g.hour, g.email, t));
            return open === undefined ? null : reachFloor(g.minQuota, open);
          });
          const totals = await tx.query<{ h: number; email: string; usage: number }>(USAGE_SQL, [
            intArray(list.map((g) => g.hour)),
            textArray(list.map((g) => g.email)),
            intArray(list.map((g) => g.sum)),
            intArray(list.map((g) => g.user.quota)),
            intArray(list.map((g) => g.idx.length)),
            intArray(floors),
          ]);
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
          const tried: { hour: number; email: string; threshold: number; i: number }[] = [];
          for (const r of totals) {
            const hour = Number(r.h);
            const g = groups.get(hour)!.get(r.email)!;
            const before = Number(r.usage) - g.sum;
            const events = g.idx.map((i) => ({ bytes: b.bytes[i], quota: b.users[i].quota }));
            for (
              const x of crossings(
                before,
                events,
                o.thresholds,
                (t) => this.#alerted(hour, g.email, t),
              )
            ) {
              const i = g.idx[x.index];
              tried.push({ hour, email: g.email, threshold: x.threshold, i });
              cols.h.push(hour);
              cols.email.push(g.email);
              cols.t.push(String(x.threshold));
              cols.quota.push(x.quota);
              cols.usage.push(x.usage);
              cols.c.push(b.ts[i]);
              cols.o.push(b.offsets[i]);
              cols.w.push(b.wall[i]);
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
            ]);
            const inserted = new Map(
              rows.map((r) => [`${Number(r.h)}\u0000${keyOf(r.email, Number(r.threshold))}`, r]),
            );
            for (let k = 0; k < tried.length; k++) {
              const x = tried[k];
              const r = inserted.get(`${x.hour}\u0000${keyOf(x.email, x.threshold)}`);
              if (!r) {
                // Another partition or instance got there first: it exists.
                let keys = existing.get(x.hour);
                if (!keys) existing.set(x.hour, keys = []);
                keys.push(keyOf(x.email, x.threshold));
                continue;
              }
              raised.push({
                alert: {
                  id: Number(r.id),
                  email: x.email,
                  hour: x.hour,
                  threshold: x.threshold,
                  quota: cols.quota[k],
                  usage: cols.usage[k],
                  crossedAt: b.ts[x.i],
                  detectedAt: r.detected_at.getTime(),
                  source: "speed",
                  partition,
                  offset: b.offsets[x.i],
                },
                consumedAt: b.wall[x.i],
              });
            }
          }
        }
        const clock = Math.max(clock0, b.maxTs);
        if (Number.isFinite(clock)) await tx.query(SAVE_CLOCK_SQL, [o.topic, partition, clock]);
        outcome = { clock, raised, existing, skipped };
      },
      committed: () => {
        if (!outcome) return;
        if (Number.isFinite(outcome.clock)) this.#clocks.set(partition, outcome.clock);
        for (const [hour, keys] of outcome.existing) this.#remember(hour, keys);
        for (const r of outcome.raised) {
          this.#remember(r.alert.hour, [keyOf(r.alert.email, r.alert.threshold)]);
        }
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
