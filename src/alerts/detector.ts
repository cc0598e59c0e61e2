/**
 * The quota alert detector: a flush participant of the speed layer
 * (speed/participant.ts). It sees every valid event once, in offset order per
 * partition, keeps them until the partition's flush, and then writes in the
 * flush transaction what they add to each (hour, email): one row of arrays
 * (`quota_usage_shares`) and the partition's clock, beside the windows and
 * the offset they account for. So a crash, a replay or a rebalance can
 * neither count an event twice nor lose one, and the flush does no per-user
 * write. After the commit the share goes to the fold (fold.ts), which applies
 * it to the running usage summed over every partition and instance and
 * raises the alerts, with the events still in memory to find the one that
 * reached each threshold.
 *
 * Which events count is core/quota_alerts.ts (the lateness rule per hour).
 */
import type { Queryable } from "../db/db.ts";
import type { SourcedEvent } from "../core/event.ts";
import { hourCutoff } from "../core/quota_alerts.ts";
import { HOUR_MS } from "../core/window.ts";
import { nums, textArray, TS } from "./_sql.ts";
import type { FlushParticipant, ParticipantWrite } from "../speed/mod.ts";
import type { UserDirectory, UserEntry } from "./users.ts";

/**
 * The valid events of one partition since its last take, in offset order, as
 * typed columns: the speed layer's event objects are not kept (held until the
 * flush, they would outlive V8's young generation and cost old-generation
 * collections), only what the alerts need: the device id (a string the
 * layer's windows hold until the flush anyway; looked up at the flush, when
 * the windows have computed its hash), bytes, event time and offset. After
 * the commit the columns go on in the share (the crossing walk reads them),
 * without a copy.
 */
export class Pending {
  n = 0;
  /** Each event's device id (dropped at the commit: the share does not need them). */
  ids: string[] = [];
  bytes = new Float64Array(1024);
  time = new Float64Array(1024);
  offset = new Float64Array(1024);
  /** Index of the first event consumed at each `walls` time (ascending). */
  readonly wallFrom: number[] = [];
  readonly walls: number[] = [];

  push(id: string, bytes: number, timeMs: number, offset: number): void {
    if (this.n === this.bytes.length) this.#grow();
    const i = this.n++;
    this.ids.push(id);
    this.bytes[i] = bytes;
    this.time[i] = timeMs;
    this.offset[i] = offset;
  }

  #grow(): void {
    const size = this.bytes.length * 2;
    const grow = (a: Float64Array, b: Float64Array<ArrayBuffer>) => {
      b.set(a);
      return b;
    };
    this.bytes = grow(this.bytes, new Float64Array(size));
    this.time = grow(this.time, new Float64Array(size));
    this.offset = grow(this.offset, new Float64Array(size));
  }

  /** Wall time the `i`-th event was consumed. */
  wallOf(i: number): number {
    let lo = 0, hi = this.wallFrom.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.wallFrom[mid] <= i) lo = mid;
      else hi = mid - 1;
    }
    return this.walls[lo];
  }
}

/**
 * One partition's committed share, as the fold gets it: per (hour, user) of
 * the take its sum, as parallel typed arrays, and the take's events (their
 * columns, about 28 bytes an event) with each one's group, in offset order.
 */
export interface Share {
  /** Its `quota_usage_shares` rows (one per hour). */
  readonly ids: readonly number[];
  readonly partition: number;
  /** Per group (hour, user): hour, user slot, sum, and the user's quota at the flush. */
  readonly groupHour: Float64Array;
  readonly groupSlot: Int32Array;
  readonly groupSum: Float64Array;
  readonly groupQuota: Float64Array;
  /** Per event of the take: its group's index, -1 when it does not count (late, unknown device). */
  readonly group: Int32Array;
  /** The take's events: bytes, offset, event time and consume time (`wallOf`). */
  readonly events: Omit<Pending, "ids">;
  /** The newest event time of its counted events (-Infinity: none). */
  readonly newestMs: number;
  /**
   * Its partition had more messages waiting than the take held: the speed
   * layer is catching up (the fold lets it, see fold.ts nextFold).
   */
  readonly behind: boolean;
}

/** A growable Float64Array / Int32Array column. */
class Column<T extends Float64Array | Int32Array> {
  n = 0;
  constructor(public a: T, readonly make: (size: number) => T) {}
  push(v: number): void {
    if (this.n === this.a.length) {
      const b = this.make(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  done(): T {
    return this.a.slice(0, this.n) as T;
  }
}

const floats = (n = 1024) => new Column(new Float64Array(n), (m) => new Float64Array(m));
const ints = (n = 1024) => new Column(new Int32Array(n), (m) => new Int32Array(m));

export interface DetectorOptions {
  readonly users: Pick<UserDirectory, "lookup">;
  readonly allowedLatenessMs: number;
  /** Source topic (shares and clocks are kept per topic and partition). */
  readonly topic: string;
  /** This process (host:pid), the holder of its shares. */
  readonly holder: string;
  /** After the flush transaction committed: hand the share to the fold. Never throws. */
  readonly onShare: (share: Share) => void;
  /** Events too late for their hour (left to the batch layer), after commit. */
  readonly onLateSkipped?: (events: number) => void;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly clock?: () => number;
}

const CLOCK_SQL = `SELECT clock_ms FROM quota_alert_clocks WHERE topic = $1 AND "partition" = $2`;

const SAVE_CLOCK_SQL = `INSERT INTO quota_alert_clocks AS c (topic, "partition", clock_ms)
  VALUES ($1, $2, $3)
  ON CONFLICT (topic, "partition") DO UPDATE SET clock_ms = GREATEST(c.clock_ms, EXCLUDED.clock_ms)`;

const SHARE_SQL = `INSERT INTO quota_usage_shares (topic, "partition", holder, hour, slots,
    usages, last_offset, last_time)
  VALUES ($1, $2, $3, ${TS("$4::bigint")}, $5::int[], $6::bigint[], $7, ${TS("$8::bigint")})
  RETURNING id`;

const SLOTS_SQL = `INSERT INTO quota_alert_slots (holder, slot, email)
  SELECT $1, u.slot, u.email FROM unnest($2::int[], $3::text[]) AS u(slot, email)
  ON CONFLICT DO NOTHING`;

export class AlertDetector implements FlushParticipant {
  readonly name = "quota_alerts";
  readonly #o: DetectorOptions;
  readonly #clock: () => number;
  readonly #pending = new Map<number, Pending>();
  /** Each partition's clock as of its last committed write (absent: read it from the table). */
  readonly #clocks = new Map<number, number>();
  /** Numbers the takes, for the users' scratch fields. */
  #take = 0;
  /** Slots whose email is in quota_alert_slots (committed). */
  #persisted = new Uint8Array(1024);
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

  // The hot path: four values per event (a batch's events share one wall time).
  event(e: SourcedEvent): void {
    let b = this.#pending.get(e.partition);
    if (!b) this.#pending.set(e.partition, b = new Pending());
    if (!this.#wallValid) {
      this.#wall = this.#clock();
      this.#wallValid = true;
      queueMicrotask(this.#endWall);
    }
    if (b.walls.at(-1) !== this.#wall) {
      b.wallFrom.push(b.n);
      b.walls.push(this.#wall);
    }
    b.push(e.id, e.bytes, e.timestamp * 1000, e.offset);
  }

  take(partition: number, at: { readonly lag: number }): ParticipantWrite | undefined {
    const b = this.#pending.get(partition);
    if (!b) return undefined;
    this.#pending.delete(partition);
    return this.#write(partition, b, at.lag > b.n);
  }

  release(partition: number): void {
    this.#pending.delete(partition);
    this.#clocks.delete(partition);
  }

  /**
   * The counted events of a take summed per (hour, email), each event's
   * group, and the partition's clock after them. The hot loop: per event a
   * comparison with its hour's cutoff (core/quota_alerts.ts) and one lookup
   * of its device; the sums live on the users' scratch fields, not in a map.
   */
  #group(b: Pending, clock0: number) {
    const take = ++this.#take;
    const lateness = this.#o.allowedLatenessMs;
    const users = this.#o.users;
    const n = b.n;
    const group = new Int32Array(n);
    const gHour = floats(), gSlot = ints(), gSum = floats(), gQuota = floats();
    const gLastTime = floats();
    /** Users of the take whose email is not in quota_alert_slots yet. */
    const fresh: UserEntry[] = [];
    let spill: Map<string, number> | undefined; // a user with events of two hours in one take
    let from = NaN, to = NaN, cutoff = -Infinity;
    let clock = clock0;
    let skipped = 0;
    for (let i = 0; i < n; i++) {
      const t = b.time[i];
      if (!(t >= from && t < to)) {
        from = Math.floor(t / HOUR_MS) * HOUR_MS;
        to = from + HOUR_MS;
        cutoff = hourCutoff(from, lateness);
      }
      let g = -1;
      if (clock < cutoff) {
        const user = users.lookup(b.ids[i]);
        if (user) {
          if (user.take !== take) {
            user.take = take;
            user.hour = from;
            user.index = g = gSlot.n;
            gHour.push(from);
            gSlot.push(user.slot);
            gSum.push(0);
            gQuota.push(user.quota);
            gLastTime.push(t);
            if ((this.#persisted[user.slot] ?? 0) === 0) fresh.push(user);
          } else if (user.hour === from) g = user.index;
          else {
            spill ??= new Map();
            const key = `${from}|${user.slot}`;
            const known = spill.get(key);
            if (known !== undefined) g = known;
            else {
              spill.set(key, g = gSlot.n);
              gHour.push(from);
              gSlot.push(user.slot);
              gSum.push(0);
              gQuota.push(user.quota);
              gLastTime.push(t);
            }
          }
          gSum.a[g] += b.bytes[i];
          if (t > gLastTime.a[g]) gLastTime.a[g] = t;
        }
      } else skipped++;
      group[i] = g;
      if (t > clock) clock = t;
    }
    const lastTime = gLastTime.done();
    const share = {
      newestMs: lastTime.reduce((m, x) => Math.max(m, x), -Infinity),
      groupHour: gHour.done(),
      groupSlot: gSlot.done(),
      groupSum: gSum.done(),
      groupQuota: gQuota.done(),
      group,
      events: b,
    };
    return { share, lastTime, fresh, clock, skipped };
  }

  /** One partition's share of a flush; `write` may run more than once, so it only computes. */
  #write(partition: number, b: Pending, behind: boolean): ParticipantWrite {
    const o = this.#o;
    let outcome:
      | {
        ids: number[];
        clock: number;
        skipped: number;
        share: Omit<Share, "ids" | "partition" | "behind">;
        fresh: UserEntry[];
      }
      | undefined;
    return {
      write: async (tx: Queryable) => {
        let clock0 = this.#clocks.get(partition);
        if (clock0 === undefined) {
          const rows = await tx.query<{ clock_ms: number }>(CLOCK_SQL, [o.topic, partition]);
          clock0 = rows.length ? Number(rows[0].clock_ms) : -Infinity;
        }
        const { share, lastTime, fresh, clock, skipped } = this.#group(b, clock0);
        // The emails of slots this process's shares have not named yet.
        if (fresh.length > 0) {
          await tx.query(SLOTS_SQL, [
            o.holder,
            nums(fresh.map((u) => u.slot)),
            textArray(fresh.map((u) => u.email)),
          ]);
        }
        // One row per hour (a take spans two at most, around an hour's end).
        const ids: number[] = [];
        const gh = share.groupHour;
        const hours = gh.length === 0 ? [] : [...new Set(gh)].sort((x, y) => x - y);
        for (const hour of hours) {
          const pick = hours.length === 1 ? undefined : gh.map((h) => (h === hour ? 1 : 0));
          const slots = pick ? share.groupSlot.filter((_, k) => pick[k] === 1) : share.groupSlot;
          const sums = pick ? share.groupSum.filter((_, k) => pick[k] === 1) : share.groupSum;
          const last = pick ? lastTime.filter((_, k) => pick[k] === 1) : lastTime;
          const rows = await tx.query<{ id: number }>(SHARE_SQL, [
            o.topic,
            partition,
            o.holder,
            hour,
            nums(slots),
            nums(sums),
            b.offset[b.n - 1],
            last.reduce((m, t) => Math.max(m, t), -Infinity),
          ]);
          ids.push(Number(rows[0].id));
        }
        if (Number.isFinite(clock)) await tx.query(SAVE_CLOCK_SQL, [o.topic, partition, clock]);
        outcome = { ids, clock, skipped, share, fresh };
      },
      committed: () => {
        if (!outcome) return;
        b.ids = []; // the share keeps the columns, not the ids
        if (Number.isFinite(outcome.clock)) this.#clocks.set(partition, outcome.clock);
        for (const u of outcome.fresh) {
          if (u.slot >= this.#persisted.length) {
            const grown = new Uint8Array(Math.max(u.slot + 1, this.#persisted.length * 2));
            grown.set(this.#persisted);
            this.#persisted = grown;
          }
          this.#persisted[u.slot] = 1;
        }
        if (outcome.skipped > 0) o.onLateSkipped?.(outcome.skipped);
        if (outcome.ids.length === 0) return;
        try {
          o.onShare({ ids: outcome.ids, partition, behind, ...outcome.share });
        } catch {
          // committed() must not throw: the share is durable, the fold finds it anyway.
        }
      },
    };
  }
}
