/**
 * The fold: the one place quota alerts are decided. It applies committed
 * shares (detector.ts: what a partition's flush added to each hour and
 * email) to the running usage summed over every partition and instance, in
 * transactions of its own, apart from the speed layer's flushes:
 * 1. claim the shares by deleting them (DELETE ... RETURNING: a share is
 *    applied by exactly one fold, even when two processes try);
 * 2. add their sums to `quota_usage`, one upsert for every touched (hour,
 *    email), in that order (a concurrent fold of another instance waits on
 *    the row, then adds to the committed total: each fold sees the exact
 *    usage before the shares it applies);
 * 3. walk the shares' events on top of that usage, in order, to the event
 *    that reached each threshold, and insert one alert per (hour, email,
 *    threshold) with its outbox rows (ON CONFLICT DO NOTHING);
 * 4. commit: the usage, the alerts and the removal of the shares together.
 * A crash before the commit leaves the shares in the table: this process
 * (restarted) or another folds them, from their arrays; the event that
 * reached a threshold is then the share's last event.
 *
 * A share waits for the next fold as it came from its flush (typed arrays,
 * ~28 bytes an event, for the crossing walk); the fold sums its shares per
 * hour and user (arrays indexed by the users' slots), so it costs one row
 * per user and hour whatever the number of shares. When the shares are about
 * now, the next fold follows at once (an alert within milliseconds of its
 * flush); while the speed layer is behind its partitions' ends, at most one
 * fold a minute; and when shares are of old events, folds are paced to a
 * twentieth of the time (PACE), so many flushes share one fold (nextFold).
 * Shares of gone processes are looked for at start and every ORPHAN_EVERY_MS.
 */
import type { RunHolder } from "../holder.ts";
import type { Db, Queryable } from "../db/db.ts";
import { type CountedEvent, crossings, reachFloor } from "../core/quota_alerts.ts";
import type { Logger } from "../log.ts";
import { firstOpen, intArray, nums, textArray, TS } from "./_sql.ts";
import { pause } from "../async/delay.ts";
import { backoffMs } from "../async/retry.ts";
import { Serial } from "../async/serial.ts";
import { Wakeup } from "../async/wakeup.ts";
import type { Share } from "./detector.ts";
import type { QuotaAlert } from "./types.ts";
import { UserEntry } from "./users.ts";

/** An alert the fold made durable, with when its crossing event was consumed. */
export interface RaisedAlert {
  readonly alert: QuotaAlert;
  /** Wall time the crossing event was consumed, epoch ms. */
  readonly consumedAt: number;
}

export interface FoldOptions {
  readonly db: Db;
  /** Ascending shares of the quota. */
  readonly thresholds: readonly number[];
  /** Outputs that get an outbox row per alert (kafka, webhook). */
  readonly outputs: readonly string[];
  /** This process; shares of holders that are gone are folded too. */
  readonly holder: RunHolder;
  readonly topic: string;
  readonly log: Logger;
  /** After a fold committed. Never throws. */
  readonly onRaised: (alerts: readonly RaisedAlert[]) => void;
  /** Users by email (shares folded from their rows carry emails only). */
  readonly users: {
    userOf(email: string): UserEntry | undefined;
    slotOf(email: string): number;
    atSlot(slot: number): UserEntry | undefined;
  };
  /** Wall clock, epoch ms. Default Date.now. */
  readonly clock?: () => number;
}

/** How often shares of processes that are gone are looked for. */
const ORPHAN_EVERY_MS = 10_000;
/** A share this old is folded by anyone (its process on another host died). */
const ORPHAN_AGE_MS = 120_000;
/** Orphan shares taken per fold (a full batch makes the next fold follow at once). */
const ORPHANS_PER_FOLD = 200;
/** Shares whose newest event is this close to the wall clock are about now: no pacing. */
const LIVE_MS = 10 * 60_000;
/**
 * Catching up on old events, after a fold of D ms the next waits PACE x D, at
 * most MAX_PACE_MS; while behind, MAX_PACE_MS.
 */
const PACE = 19;
const MAX_PACE_MS = 60_000;
/** About now, after a fold of D ms the next waits D, at most LIVE_PACE_MS. */
const LIVE_PACE_MS = 1_000;
/** How far back the fold remembers which alerts exist (hours). */
const KNOWN_HOURS = 3;

const MS = (expr: string) => `(EXTRACT(EPOCH FROM ${expr}) * 1000)::bigint`;

const CLAIM_OWN_SQL = `DELETE FROM quota_usage_shares WHERE id = ANY($1::bigint[]) RETURNING id`;

const HOLDERS_SQL = `SELECT DISTINCT holder FROM quota_usage_shares WHERE holder <> $1`;

const CLAIM_ORPHANS_SQL = `DELETE FROM quota_usage_shares WHERE id IN (
    SELECT id FROM quota_usage_shares
    WHERE holder <> $1 AND (holder = ANY($2::text[])
      OR created_at < now() - $3::bigint * interval '1 millisecond')
    ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
  RETURNING id, "partition", holder, ${MS("hour")} AS hour, slots, usages, last_offset,
    ${MS("last_time")} AS last_time, ${MS("created_at")} AS created_ms`;

const SLOT_EMAILS_SQL = `SELECT slot, email FROM quota_alert_slots
  WHERE holder = $1 AND slot = ANY($2::int[])`;

// A gone process's slots, once none of its shares is left.
const FORGET_SLOTS_SQL = `DELETE FROM quota_alert_slots s WHERE s.holder = ANY($1::text[])
  AND NOT EXISTS (SELECT 1 FROM quota_usage_shares x WHERE x.holder = s.holder)`;

// Rows in (hour, email) order: every fold locks them in that order. Only
// totals that may reach an open threshold come back, with their input place.
const USAGE_SQL = `WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
      WITH ORDINALITY AS u(h, email, add, quota, floor, n)
  ), up AS (
    INSERT INTO quota_usage AS q (hour, email, usage, quota, updated_at)
    SELECT ${TS("i.h")}, i.email, i.add, i.quota, now() FROM input i
    ORDER BY i.h, i.email
    ON CONFLICT (hour, email) DO UPDATE SET usage = q.usage + EXCLUDED.usage,
      quota = EXCLUDED.quota, updated_at = EXCLUDED.updated_at
    RETURNING q.hour, q.email, q.usage
  )
  SELECT i.n, up.usage FROM up
  JOIN input i ON ${TS("i.h")} = up.hour AND i.email = up.email
  WHERE i.floor IS NOT NULL AND up.usage >= i.floor`;

// The rows of hours this process never folded: new, unless another process wrote them.
const INSERT_SQL = `INSERT INTO quota_usage (hour, email, usage, quota, updated_at)
  SELECT ${TS("u.h")}, u.email, u.add, u.quota, now()
  FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS u(h, email, add, quota)
  ORDER BY u.h, u.email`;

const HOUR_HAS_ROWS_SQL = `SELECT EXISTS (SELECT 1 FROM quota_usage
  WHERE hour = ${TS("$1::bigint")}) AS any`;

const ALERTS_SQL = `WITH a AS (
    INSERT INTO quota_alerts (hour, email, threshold, quota, usage, crossed_at, detected_at,
      source, topic, "partition", "offset", consumed_at, raised_by)
    SELECT ${TS("u.h")}, u.email, u.t::numeric, u.quota, u.usage, ${TS("u.c")},
      clock_timestamp(), 'speed', $10, u.p, u.o, to_timestamp(u.w / 1000.0), $12
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[],
      $7::bigint[], $8::bigint[], $9::int[]) AS u(h, email, t, quota, usage, c, o, w, p)
    ORDER BY u.h, u.email, u.t::numeric
    ON CONFLICT (hour, email, threshold) DO NOTHING
    RETURNING id, hour, email, threshold, detected_at
  ), d AS (
    INSERT INTO quota_alert_deliveries (alert_id, output)
    SELECT a.id, o.output FROM a CROSS JOIN unnest($11::text[]) AS o(output)
  )
  SELECT id, ${MS("hour")} AS h, email, threshold, detected_at FROM a`;

interface OrphanRow {
  id: number;
  partition: number;
  holder: string;
  hour: number;
  slots: number[];
  /** Filled from quota_alert_slots after the claim. */
  emails: string[];
  usages: number[];
  last_offset: number;
  last_time: number;
  created_ms: number;
}

/** A committed share of this process (detector.ts): what the crossing walk needs. */
type Compact = Share;

/** One hour of a pending fold: sums and users by slot, and the slots touched. */
class HourSums {
  sum = new Float64Array(1024);
  users: (UserEntry | undefined)[] = [];
  readonly touched: number[] = [];
  constructor(readonly hour: number) {}

  add(user: UserEntry, slot: number, bytes: number): void {
    if (slot >= this.sum.length) {
      const grown = new Float64Array(Math.max(slot + 1, this.sum.length * 2));
      grown.set(this.sum);
      this.sum = grown;
    }
    if (this.users[slot] === undefined) this.touched.push(slot);
    this.users[slot] = user;
    this.sum[slot] += bytes;
  }
}

/** The shares of the next fold, and their sums per hour and user (`sum`). */
class Pending {
  readonly hours = new Map<number, HourSums>();
  readonly shares: Compact[] = [];
  /** Newest event time of its shares (epoch ms). */
  newestMs = -Infinity;
  /** The latest share's partition was catching up. */
  behind = false;

  constructor(shares: readonly Compact[] = []) {
    for (const c of shares) this.add(c);
  }

  get empty(): boolean {
    return this.shares.length === 0;
  }

  add(c: Compact): void {
    this.shares.push(c);
    if (c.newestMs > this.newestMs) this.newestMs = c.newestMs;
    this.behind = c.behind;
  }

  hour(h: number): HourSums {
    let s = this.hours.get(h);
    if (!s) this.hours.set(h, s = new HourSums(h));
    return s;
  }

  /**
   * Sums the shares per hour and user, once, at the fold: done as each
   * share came, it would cost the speed layer's thread while it catches up,
   * for folds that are paced to come later anyway.
   */
  sum(userAt: (slot: number) => UserEntry | undefined): void {
    this.hours.clear();
    for (const c of this.shares) {
      let hs: HourSums | undefined;
      for (let k = 0; k < c.groupSlot.length; k++) {
        const h = c.groupHour[k], slot = c.groupSlot[k];
        const u = userAt(slot);
        if (!u) continue; // unreachable: the detector found it in the directory
        if (hs?.hour !== h) hs = this.hour(h);
        hs.add(u, slot, c.groupSum[k]);
      }
    }
  }
}

/** A counted event with where it came from, for the crossing walk. */
interface Step extends CountedEvent {
  readonly partition: number;
  readonly offset: number;
  readonly timeMs: number;
  readonly consumedMs: number;
}

/** What the fold loop does next (see {@linkcode nextFold}). */
export type FoldStep =
  | { readonly kind: "idle" }
  | { readonly kind: "wait"; readonly ms: number }
  | { readonly kind: "fold"; readonly own: boolean; readonly orphans: boolean };

/**
 * The fold loop's decision. Own shares are folded once their pace allows:
 * while the speed layer is behind (the latest share's partition had more
 * messages waiting than its take held), `behindAt` (at most one fold a
 * minute: catching up comes first, and a fold then applies many flushes
 * with one row per user and hour); otherwise about now `liveAt`, catching
 * up on old events `backlogAt`. Orphans are looked for every
 * ORPHAN_EVERY_MS, and that look leaves own shares to their pace (folding
 * them with it would undo the pacing every ORPHAN_EVERY_MS). Nothing pending
 * and no look due: idle until woken. Waits are at most 200 ms, so a stop or
 * a new share is seen soon.
 */
export function nextFold(s: {
  readonly now: number;
  readonly pendingEmpty: boolean;
  /** Newest event time of the pending shares. */
  readonly newestMs: number;
  /** The latest pending share's partition was behind. */
  readonly behind: boolean;
  readonly liveAt: number;
  readonly backlogAt: number;
  readonly behindAt: number;
  readonly lastOrphansAt: number;
}): FoldStep {
  const orphans = s.now - s.lastOrphansAt >= ORPHAN_EVERY_MS;
  if (s.pendingEmpty) return orphans ? { kind: "fold", own: false, orphans } : { kind: "idle" };
  const live = s.newestMs >= s.now - LIVE_MS;
  const wait = (s.behind ? s.behindAt : live ? s.liveAt : s.backlogAt) - s.now;
  const own = wait <= 0;
  if (!own && !orphans) return { kind: "wait", ms: Math.min(wait, 200) };
  return { kind: "fold", own, orphans };
}

export class Fold {
  readonly #o: FoldOptions;
  readonly #clock: () => number;
  #pending = new Pending();
  readonly #wakeup = new Wakeup();
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #lastOrphans = -Infinity;
  #moreOrphans = false;
  /** Folds run one at a time (the loop, settle, stop). */
  readonly #folds = new Serial();
  /** Hours this process has folded rows of (recent ones). */
  readonly #folded = new Set<number>();

  constructor(options: FoldOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
  }

  /** A committed share of this process: kept for the next fold. */
  add(share: Share): void {
    this.#pending.add(share);
    this.#wakeup.wake();
  }

  /** Shares waiting for a fold. */
  get pending(): number {
    return this.#pending.shares.length;
  }

  start(): void {
    this.#loop = (async () => {
      let failures = 0;
      // Earliest next fold: for shares about now, of old events, and while behind.
      let liveAt = -Infinity, backlogAt = -Infinity;
      let behindAt = this.#clock() + MAX_PACE_MS;
      while (!this.#stop.signal.aborted) {
        const now = this.#clock();
        const step = nextFold({
          now,
          pendingEmpty: this.#pending.empty,
          newestMs: this.#pending.newestMs,
          behind: this.#pending.behind,
          liveAt,
          backlogAt,
          behindAt,
          lastOrphansAt: this.#lastOrphans,
        });
        if (step.kind === "idle") {
          await this.#wakeup.wait(ORPHAN_EVERY_MS, this.#stop.signal);
          continue;
        }
        if (step.kind === "wait") {
          await pause(step.ms, this.#stop.signal);
          continue;
        }
        const { own: ownDue, orphans: orphansDue } = step;
        const t0 = this.#clock();
        try {
          await this.#folds.run(() => this.foldOnce(orphansDue, ownDue));
          if (failures > 0) this.#o.log.info("quota alert fold resumed", { failures });
          failures = 0;
          if (ownDue) {
            const end = this.#clock(), took = end - t0;
            liveAt = end + Math.min(LIVE_PACE_MS, took);
            backlogAt = end + Math.min(MAX_PACE_MS, PACE * took);
            behindAt = end + MAX_PACE_MS;
          }
        } catch (error) {
          failures++;
          if (failures === 1) this.#o.log.warn("quota alert fold failed, retrying", { error });
          await pause(backoffMs(failures), this.#stop.signal);
        }
      }
    })();
  }

  /** Folds what is pending now, after the fold in progress (if any). */
  async settle(): Promise<void> {
    await this.#folds.run(async () => {
      if (!this.#pending.empty) await this.foldOnce(false);
    });
  }

  /** Stops after a last fold of what is pending (bounded by `deadlineMs`). */
  async stop(deadlineMs = 2_000): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    if (this.#pending.empty) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#folds.run(() => this.foldOnce(false)).catch((error) =>
        this.#o.log.warn("quota alert fold at stop failed: the next start folds it", { error })
      ),
      new Promise((r) => timer = setTimeout(r, deadlineMs)),
    ]);
    clearTimeout(timer);
  }

  /** One fold: everything pending (unless `own` is false), and orphans when `orphans`. */
  async foldOnce(orphans: boolean, own = true): Promise<void> {
    const o = this.#o;
    const taken = own ? this.#pending : new Pending();
    if (own) this.#pending = new Pending();
    let outcome: Applied;
    const t0 = performance.now();
    try {
      outcome = await o.db.transaction((tx) => this.#apply(tx, taken, orphans));
      o.log.debug("quota alert fold", {
        ms: Math.round(performance.now() - t0),
        shares: taken.shares.length,
        rows: outcome.rows,
        orphans,
        raised: outcome.raised.length,
      });
    } catch (e) {
      if (!own) throw e; // the pending shares were not taken
      // Retried with what came meanwhile, in order.
      this.#pending = new Pending([...taken.shares, ...this.#pending.shares]);
      throw e;
    } finally {
      // A full batch of orphans: more may be waiting, look again at once.
      if (orphans) this.#lastOrphans = this.#moreOrphans ? -Infinity : this.#clock();
    }
    for (const k of outcome.known) this.#remember(k.user, k.hour, k.t);
    for (const h of outcome.folded) this.#folded.add(h);
    if (this.#folded.size > 48) this.#folded.delete(Math.min(...this.#folded));
    if (outcome.raised.length > 0) {
      try {
        o.onRaised(outcome.raised);
      } catch {
        // The alerts are durable whatever a listener does.
      }
    }
  }

  #mask(user: UserEntry, hour: number): number {
    return user.alerted?.get(hour) ?? 0;
  }

  #remember(user: UserEntry, hour: number, threshold: number): void {
    const i = this.#o.thresholds.indexOf(threshold);
    if (i < 0) return;
    const known = user.alerted ??= new Map();
    known.set(hour, (known.get(hour) ?? 0) | (1 << i));
    if (known.size > KNOWN_HOURS) known.delete(Math.min(...known.keys()));
  }

  /** One fold's transaction, in the steps the module comment numbers. */
  async #apply(tx: Queryable, taken: Pending, orphans: boolean): Promise<Applied> {
    const work = await this.#claimOwn(tx, taken);
    const others = orphans ? await this.#claimOrphans(tx, work) : [];
    // What the fold applied (its own shares that it claimed, and orphans'), for the caller.
    let rows = 0;
    for (const hs of work.hours.values()) rows += hs.touched.length;
    const done: Applied = { raised: [], known: [], folded: [], rows };
    if (work.hours.size === 0) return done;
    const totals = await this.#sum(tx, work);
    for (const hs of work.hours.values()) done.folded.push(hs.hour);
    if (totals.length === 0) return done;
    const steps = this.#walk(totals, work, others);
    await this.#insert(tx, totals, steps, done);
    return done;
  }

  /** Step 1, own shares: claimed by deleting them; those another process took are left out. */
  async #claimOwn(tx: Queryable, taken: Pending): Promise<Pending> {
    if (taken.empty) return taken;
    let work = taken;
    const ids = taken.shares.flatMap((c) => c.ids);
    const claimed = new Set(
      (await tx.query<{ id: number }>(CLAIM_OWN_SQL, [nums(ids)])).map((r) => Number(r.id)),
    );
    if (claimed.size < ids.length) {
      // Another process took some as orphans (it thought this one gone): not applied here.
      work = new Pending(taken.shares.filter((c) => c.ids.every((id) => claimed.has(id))));
    }
    work.sum((slot) => this.#o.users.atSlot(slot));
    return work;
  }

  /** Step 1, orphans: shares of processes that are gone, claimed and added to `work`'s sums. */
  async #claimOrphans(tx: Queryable, work: Pending): Promise<OrphanRow[]> {
    const o = this.#o;
    const holders = (await tx.query<{ holder: string }>(HOLDERS_SQL, [o.holder.id]))
      .map((r) => r.holder).filter((h) => o.holder.gone(h));
    const others = await tx.query<OrphanRow>(CLAIM_ORPHANS_SQL, [
      o.holder.id,
      textArray(holders),
      ORPHAN_AGE_MS,
      ORPHANS_PER_FOLD,
    ]);
    this.#moreOrphans = others.length === ORPHANS_PER_FOLD;
    for (const r of others) {
      const names = new Map(
        (await tx.query<{ slot: number; email: string }>(SLOT_EMAILS_SQL, [
          r.holder,
          nums(r.slots),
        ])).map((x) => [Number(x.slot), x.email]),
      );
      r.emails = r.slots.map((slot) => names.get(Number(slot)) ?? "");
    }
    if (holders.length > 0) await tx.query(FORGET_SLOTS_SQL, [textArray(holders)]);
    if (others.length > 0) {
      o.log.info("quota alerts: folding shares of a process that is gone", {
        shares: others.length,
        holders,
      });
    }
    for (const r of others) {
      const hs = work.hour(Number(r.hour));
      r.emails.forEach((email, k) => {
        if (email === "") return; // its slot's email is lost: nothing to attribute it to
        // A user gone from user_metadata since has no limit to reach.
        const user = o.users.userOf(email) ??
          new UserEntry(email, Number.MAX_SAFE_INTEGER, o.users.slotOf(email));
        hs.add(user, user.slot, Number(r.usages[k]));
      });
    }
    return others;
  }

  /**
   * Step 2: every touched (hour, user), coalesced over the shares, added to
   * `quota_usage`. An hour with no row yet (its first fold anywhere) is a
   * plain INSERT: it costs PostgreSQL about a third less than an upsert, and
   * the totals are then what is added; the others are upserted. Returns the
   * totals that may reach an open threshold.
   */
  async #sum(tx: Queryable, work: Pending): Promise<Total[]> {
    const o = this.#o;
    const fresh: UsageRow[] = [], seen: UsageRow[] = [];
    for (const hs of work.hours.values()) {
      const into = this.#folded.has(hs.hour) ? seen : fresh;
      for (const slot of hs.touched) {
        const user = hs.users[slot]!;
        const open = firstOpen(this.#mask(user, hs.hour), o.thresholds.length);
        const floor = open < 0 ? null : reachFloor(user.quota, o.thresholds[open]);
        into.push({ hs, slot, user, add: hs.sum[slot], floor });
      }
    }
    const totals: Total[] = [];
    const newHours = new Set<number>();
    for (const hour of new Set(fresh.map((r) => r.hs.hour))) {
      const rows = await tx.query<{ any: boolean }>(HOUR_HAS_ROWS_SQL, [hour]);
      if (!rows[0].any) newHours.add(hour);
    }
    const insert = fresh.filter((r) => newHours.has(r.hs.hour));
    seen.push(...fresh.filter((r) => !newHours.has(r.hs.hour)));
    if (insert.length > 0) {
      // Another process inserting the same hour's rows at this moment makes this fail:
      // the fold is retried, and then finds them.
      await tx.query(INSERT_SQL, [
        nums(insert.map((r) => r.hs.hour)),
        textArray(insert.map((r) => r.user.email)),
        nums(insert.map((r) => r.add)),
        nums(insert.map((r) => r.user.quota)),
      ]);
      for (const r of insert) {
        if (r.floor !== null && r.add >= r.floor) totals.push({ row: r, usage: r.add });
      }
    }
    if (seen.length > 0) {
      const up = await tx.query<{ n: number; usage: number }>(USAGE_SQL, [
        nums(seen.map((r) => r.hs.hour)),
        textArray(seen.map((r) => r.user.email)),
        nums(seen.map((r) => r.add)),
        nums(seen.map((r) => r.user.quota)),
        intArray(seen.map((r) => r.floor)),
      ]);
      for (const r of up) totals.push({ row: seen[Number(r.n) - 1], usage: Number(r.usage) });
    }
    return totals;
  }

  /** Step 3: the candidates' events, in order: orphans' (older) first, then each share's. */
  #walk(totals: readonly Total[], work: Pending, others: readonly OrphanRow[]): Steps {
    const o = this.#o;
    const steps: Steps = new Map();
    const marks = new Map<number, Uint8Array>();
    for (const { row: { hs, slot } } of totals) {
      let m = marks.get(hs.hour);
      if (!m) marks.set(hs.hour, m = new Uint8Array(hs.sum.length));
      m[slot] = 1;
      steps.set(stepKey(hs.hour, slot), []);
    }
    for (const r of others) {
      const hour = Number(r.hour);
      r.emails.forEach((email, k) => {
        if (email === "") return;
        const list = steps.get(stepKey(hour, o.users.slotOf(email)));
        // A share folded from its row: its events are gone, its last one stands for all.
        list?.push({
          bytes: Number(r.usages[k]),
          quota: (o.users.userOf(email)?.quota) ?? Number.MAX_SAFE_INTEGER,
          partition: Number(r.partition),
          offset: Number(r.last_offset),
          timeMs: Number(r.last_time),
          consumedMs: Number(r.created_ms),
        });
      });
    }
    for (const c of work.shares) walkShare(c, marks, steps);
    return steps;
  }

  /**
   * Step 3, the alerts: each total's events walked on top of its usage
   * before them to the ones that reached a threshold, inserted once per
   * (hour, email, threshold) with their outbox rows.
   */
  async #insert(tx: Queryable, totals: readonly Total[], steps: Steps, done: Applied) {
    const o = this.#o;
    const a = {
      h: [] as number[],
      email: [] as string[],
      t: [] as string[],
      quota: [] as number[],
      usage: [] as number[],
      c: [] as number[],
      o: [] as number[],
      w: [] as number[],
      p: [] as number[],
    };
    const tried: { user: UserEntry; hour: number; t: number }[] = [];
    for (const { row: { hs, slot, user }, usage } of totals) {
      const list = steps.get(stepKey(hs.hour, slot))!;
      const mask = this.#mask(user, hs.hour);
      const alerted = (t: number) => (mask & (1 << o.thresholds.indexOf(t))) !== 0;
      for (const x of crossings(usage - hs.sum[slot], list, o.thresholds, alerted)) {
        const s = list[x.index];
        tried.push({ user, hour: hs.hour, t: x.threshold });
        a.h.push(hs.hour);
        a.email.push(user.email);
        a.t.push(String(x.threshold));
        a.quota.push(x.quota);
        a.usage.push(x.usage);
        a.c.push(s.timeMs);
        a.o.push(s.offset);
        a.w.push(s.consumedMs);
        a.p.push(s.partition);
      }
    }
    if (tried.length === 0) return;
    const inserted = await tx.query<
      { id: number; h: number; email: string; threshold: number; detected_at: Date }
    >(ALERTS_SQL, [
      intArray(a.h),
      textArray(a.email),
      textArray(a.t),
      intArray(a.quota),
      intArray(a.usage),
      intArray(a.c),
      intArray(a.o),
      intArray(a.w),
      intArray(a.p),
      o.topic,
      textArray([...o.outputs]),
      o.holder.id,
    ]);
    const byKey = new Map(
      inserted.map((r) => [`${Number(r.h)}|${r.email}|${Number(r.threshold)}`, r]),
    );
    for (let k = 0; k < tried.length; k++) {
      const x = tried[k];
      done.known.push(x);
      const r = byKey.get(`${x.hour}|${x.user.email}|${x.t}`);
      if (!r) continue; // another instance's fold (or the batch layer) got there first
      done.raised.push({
        alert: {
          id: Number(r.id),
          email: x.user.email,
          hour: x.hour,
          threshold: x.t,
          quota: a.quota[k],
          usage: a.usage[k],
          crossedAt: a.c[k],
          detectedAt: r.detected_at.getTime(),
          source: "speed",
          partition: a.p[k],
          offset: a.o[k],
        },
        consumedAt: a.w[k],
      });
    }
  }
}

/** A touched (hour, user) of a fold and the share of its usage the fold adds. */
interface UsageRow {
  readonly hs: HourSums;
  readonly slot: number;
  readonly user: UserEntry;
  readonly add: number;
  /** The usage that reaches the user's first open threshold; null: none open. */
  readonly floor: number | null;
}

/** A row whose usage after the fold may reach an open threshold. */
interface Total {
  readonly row: UsageRow;
  readonly usage: number;
}

/** The events of each candidate (hour, slot), in order. */
type Steps = Map<string, Step[]>;

/** What one fold's transaction did, for the caller. */
interface Applied {
  readonly raised: RaisedAlert[];
  readonly known: { user: UserEntry; hour: number; t: number }[];
  readonly folded: number[];
  readonly rows: number;
}

const stepKey = (hour: number, slot: number) => `${hour}|${slot}`;

/** Appends a share's events of the marked (hour, slot)s to their step lists, in order. */
function walkShare(c: Compact, marks: ReadonlyMap<number, Uint8Array>, steps: Steps): void {
  let wanted = false;
  for (let k = 0; k < c.groupSlot.length && !wanted; k++) {
    wanted = marks.get(c.groupHour[k])?.[c.groupSlot[k]] === 1;
  }
  if (!wanted) return;
  const e = c.events;
  for (let i = 0; i < c.group.length; i++) {
    const g = c.group[i];
    if (g < 0) continue;
    const hour = c.groupHour[g], slot = c.groupSlot[g];
    if (marks.get(hour)?.[slot] !== 1) continue;
    steps.get(stepKey(hour, slot))!.push({
      bytes: e.bytes[i],
      quota: c.groupQuota[g],
      partition: c.partition,
      offset: e.offset[i],
      timeMs: e.time[i],
      consumedMs: e.wallOf(i),
    });
  }
}
