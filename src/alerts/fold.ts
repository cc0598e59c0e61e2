/**
 * The fold: the one place quota alerts are decided. It applies committed
 * shares (detector.ts: what a partition's flush added to each hour and
 * email) to the running usage summed over every partition and instance, in
 * transactions of its own, apart from the speed layer's flushes:
 * 1. claim the shares by deleting them (DELETE ... RETURNING: a share is
 *    applied by exactly one fold, even when two processes try);
 * 2. add their sums to `quota_usage`, one upsert for every touched (hour,
 *    email) in that order (a concurrent fold of another instance waits on the
 *    row, then adds to the committed total: each fold sees the exact usage
 *    before the shares it applies);
 * 3. walk the shares' events on top of that usage, in order, to the event
 *    that reached each threshold, and insert one alert per (hour, email,
 *    threshold) with its outbox rows (ON CONFLICT DO NOTHING);
 * 4. commit: the usage, the alerts and the removal of the shares together.
 * A crash before the commit leaves the shares in the table: this process
 * (restarted) or another folds them, from their arrays; the event that
 * reached a threshold is then the user's last event of the share.
 *
 * This process's shares are folded as soon as their flush commits, paced so
 * that folds take at most a tenth of the time (one fold takes every share
 * committed meanwhile, so a busy speed layer gets fewer, larger folds, and a
 * quiet one an alert within milliseconds of its flush). Shares of gone
 * processes are looked for at start and every ORPHAN_EVERY_MS.
 */
import type { RunHolder } from "../batch/mod.ts";
import type { Db, Queryable } from "../db/db.ts";
import { type CountedEvent, crossings, reachFloor } from "../core/quota_alerts.ts";
import type { Logger } from "../log.ts";
import { intArray, textArray } from "../speed/mod.ts";
import { delay, Wakeup } from "./_delay.ts";
import type { Group, Share } from "./detector.ts";
import type { QuotaAlert } from "./types.ts";
import type { UserEntry } from "./users.ts";

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
  /** An email's quota now (shares folded from their rows carry none); undefined: no user. */
  readonly quotaOf: (email: string) => number | undefined;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly clock?: () => number;
}

/** How often shares of processes that are gone are looked for. */
const ORPHAN_EVERY_MS = 10_000;
/** A share this old is folded by anyone (its process on another host died). */
const ORPHAN_AGE_MS = 120_000;
/** Orphan shares taken per fold. */
const ORPHANS_PER_FOLD = 20;
/**
 * After a fold that took D ms, the next waits PACE x D (at most MAX_PACE_MS):
 * folds take at most a tenth of the time, and a busy speed layer's shares
 * pile up in between and are applied together (one row update per user for
 * several flushes). A quiet one's folds take milliseconds: no wait to speak of.
 */
const PACE = 9;
const MAX_PACE_MS = 30_000;
/** How far back the fold remembers which alerts exist (hours). */
const KNOWN_HOURS = 3;

const TS = (expr: string) => `(TIMESTAMP 'epoch' + (${expr}) * INTERVAL '1 millisecond')`;
const MS = (expr: string) => `(EXTRACT(EPOCH FROM ${expr}) * 1000)::bigint`;

const CLAIM_OWN_SQL = `DELETE FROM quota_usage_shares WHERE id = ANY($1::bigint[]) RETURNING id`;

const HOLDERS_SQL = `SELECT DISTINCT holder FROM quota_usage_shares WHERE holder <> $1`;

const CLAIM_ORPHANS_SQL = `DELETE FROM quota_usage_shares WHERE id IN (
    SELECT id FROM quota_usage_shares
    WHERE holder <> $1 AND (holder = ANY($2::text[])
      OR created_at < now() - $3::bigint * interval '1 millisecond')
    ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
  RETURNING id, topic, "partition", ${MS("hour")} AS hour, emails, usages, last_offset,
    ${MS("last_time")} AS last_time, ${MS("created_at")} AS created_ms`;

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
  topic: string;
  partition: number;
  hour: number;
  emails: string[];
  usages: number[];
  last_offset: number;
  last_time: number;
  created_ms: number;
}

/** One share's part of a coalesced (hour, email). */
type Part =
  | { readonly share: Share; readonly group: Group }
  | { readonly orphan: OrphanRow; readonly k: number };

/** What a fold adds to one (hour, email), from every share it applies. */
interface Coalesced {
  readonly hour: number;
  readonly email: string;
  /** The user object, when a share of this process has it (its alert mask lives there). */
  user?: UserEntry;
  quota: number;
  minQuota: number;
  sum: number;
  readonly parts: Part[];
}

/** A counted event with where it came from, for the crossing walk. */
interface Step extends CountedEvent {
  readonly partition: number;
  readonly offset: number;
  readonly timeMs: number;
  readonly consumedMs: number;
}

export class Fold {
  readonly #o: FoldOptions;
  readonly #clock: () => number;
  #queue: Share[] = [];
  readonly #wakeup = new Wakeup();
  readonly #stop = new AbortController();
  #loop: Promise<void> | undefined;
  #lastOrphans = -Infinity;
  #fold = 0;
  /** Masks of alerts known to exist for emails no user object carries (orphans). */
  readonly #known = new Map<string, number>();

  constructor(options: FoldOptions) {
    this.#o = options;
    this.#clock = options.clock ?? Date.now;
  }

  /** A committed share of this process: folded soon. */
  add(share: Share): void {
    this.#queue.push(share);
    this.#wakeup.wake();
  }

  /** Shares waiting for a fold. */
  get pending(): number {
    return this.#queue.length;
  }

  start(): void {
    this.#loop = (async () => {
      let failures = 0;
      while (!this.#stop.signal.aborted) {
        const orphansDue = this.#clock() - this.#lastOrphans >= ORPHAN_EVERY_MS;
        if (this.#queue.length === 0 && !orphansDue) {
          await this.#wakeup.wait(ORPHAN_EVERY_MS, this.#stop.signal);
          continue;
        }
        try {
          const t0 = this.#clock();
          await this.foldOnce(orphansDue);
          if (failures > 0) this.#o.log.info("quota alert fold resumed", { failures });
          failures = 0;
          await delay(Math.min(MAX_PACE_MS, PACE * (this.#clock() - t0)), this.#stop.signal);
        } catch (error) {
          failures++;
          if (failures === 1) this.#o.log.warn("quota alert fold failed, retrying", { error });
          await delay(Math.min(5_000, 100 * 2 ** (failures - 1)), this.#stop.signal);
        }
      }
    })();
  }

  /** Stops after a last fold of what is queued (bounded by `deadlineMs`). */
  async stop(deadlineMs = 2_000): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    if (this.#queue.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.foldOnce(false).catch((error) =>
        this.#o.log.warn("quota alert fold at stop failed: the next start folds it", { error })
      ),
      new Promise((r) => timer = setTimeout(r, deadlineMs)),
    ]);
    clearTimeout(timer);
  }

  /** One fold: every queued share, and orphans when `orphans`. */
  async foldOnce(orphans: boolean): Promise<void> {
    const o = this.#o;
    const own = this.#queue.slice();
    let outcome: { raised: RaisedAlert[]; known: { c: Coalesced; threshold: number }[] };
    try {
      outcome = await o.db.transaction((tx) => this.#apply(tx, own, orphans));
    } finally {
      if (orphans) this.#lastOrphans = this.#clock();
    }
    // Folded here, or (claimed by no one here) by another process that took them as orphans.
    this.#queue = this.#queue.slice(own.length);
    for (const { c, threshold } of outcome.known) this.#remember(c, threshold);
    if (outcome.raised.length > 0) {
      try {
        o.onRaised(outcome.raised);
      } catch {
        // The alerts are durable whatever a listener does.
      }
    }
  }

  #mask(c: Coalesced): number {
    return (c.user ? c.user.alerted?.get(c.hour) : this.#known.get(`${c.hour}|${c.email}`)) ?? 0;
  }

  #remember(c: Coalesced, threshold: number): void {
    const bit = 1 << this.#o.thresholds.indexOf(threshold);
    if (bit < 1) return;
    if (c.user) {
      const known = c.user.alerted ??= new Map();
      known.set(c.hour, (known.get(c.hour) ?? 0) | bit);
      if (known.size > KNOWN_HOURS) known.delete(Math.min(...known.keys()));
    } else {
      const key = `${c.hour}|${c.email}`;
      this.#known.set(key, (this.#known.get(key) ?? 0) | bit);
      if (this.#known.size > 100_000) this.#known.clear();
    }
  }

  async #apply(tx: Queryable, own: readonly Share[], orphans: boolean) {
    const o = this.#o;
    const claimed = own.length === 0 ? new Set<number>() : new Set(
      (await tx.query<{ id: number }>(CLAIM_OWN_SQL, [intArray(own.flatMap((s) => s.ids))]))
        .map((r) => Number(r.id)),
    );
    // A share all of whose rows another process took (as orphans) is not applied here.
    const mine = own.filter((s) => s.ids.every((id) => claimed.has(id)));
    let others: OrphanRow[] = [];
    if (orphans) {
      const holders = (await tx.query<{ holder: string }>(HOLDERS_SQL, [o.holder.id]))
        .map((r) => r.holder).filter((h) => o.holder.gone(h));
      others = await tx.query<OrphanRow>(CLAIM_ORPHANS_SQL, [
        o.holder.id,
        textArray(holders),
        ORPHAN_AGE_MS,
        ORPHANS_PER_FOLD,
      ]);
      if (others.length > 0) {
        o.log.info("quota alerts: folding shares of a process that is gone", {
          shares: others.length,
          holders,
        });
      }
    }
    const raised: RaisedAlert[] = [];
    const known: { c: Coalesced; threshold: number }[] = [];
    if (mine.length === 0 && others.length === 0) return { raised, known };

    // Coalesce: orphans first (older), then this process's shares in commit order.
    const fold = ++this.#fold;
    const all: Coalesced[] = [];
    const byKey = new Map<string, Coalesced>(); // only needed to merge orphans in
    const add = (c: Coalesced, part: Part, sum: number, quota: number) => {
      c.parts.push(part);
      c.sum += sum;
      c.quota = quota;
      if (quota < c.minQuota) c.minQuota = quota;
    };
    for (const r of others) {
      const hour = Number(r.hour);
      for (let k = 0; k < r.emails.length; k++) {
        const email = r.emails[k];
        // A user gone from user_metadata since has no limit to reach.
        const quota = o.quotaOf(email) ?? Number.MAX_SAFE_INTEGER;
        const key = `${hour}|${email}`;
        let c = byKey.get(key);
        if (!c) {
          byKey.set(key, c = { hour, email, quota, minQuota: quota, sum: 0, parts: [] });
          all.push(c);
        }
        add(c, { orphan: r, k }, Number(r.usages[k]), quota);
      }
    }
    const keyOf = (hour: number, email: string) => `${hour}|${email}`;
    for (const share of mine) {
      for (const g of share.groups) {
        // A user's (hour) lives on its scratch fields; the map only when orphans or a
        // second hour of the same user are in this fold.
        const u = g.user;
        let c: Coalesced | undefined;
        if (u.fold === fold && u.foldHour === g.hour) c = u.foldGroup as Coalesced;
        else {
          if (byKey.size > 0 || u.fold === fold) c = byKey.get(keyOf(g.hour, u.email));
          if (!c) {
            c = {
              hour: g.hour,
              email: u.email,
              quota: u.quota,
              minQuota: u.quota,
              sum: 0,
              parts: [],
            };
            all.push(c);
          }
          if (u.fold === fold) {
            byKey.set(keyOf(u.foldHour, u.email), u.foldGroup as Coalesced);
            byKey.set(keyOf(g.hour, u.email), c);
          }
          u.fold = fold;
          u.foldHour = g.hour;
          u.foldGroup = c;
        }
        c.user = u;
        add(c, { share, group: g }, g.sum, u.quota);
      }
    }
    // PostgreSQL sorts them (ORDER BY in USAGE_SQL): every fold locks the rows in that order.
    const floors = all.map((c) => {
      const mask = this.#mask(c);
      const open = o.thresholds.findIndex((_, i) => (mask & (1 << i)) === 0);
      return open < 0 ? null : reachFloor(c.minQuota, o.thresholds[open]);
    });
    const totals = await tx.query<{ n: number; usage: number }>(USAGE_SQL, [
      intArray(all.map((c) => c.hour)),
      textArray(all.map((c) => c.email)),
      intArray(all.map((c) => c.sum)),
      intArray(all.map((c) => c.quota)),
      intArray(floors),
    ]);
    if (totals.length === 0) return { raised, known };

    // The events of the candidates' groups, in offset order: one pass per share that has some.
    const candidates = totals.map((r) => ({ c: all[Number(r.n) - 1], usage: Number(r.usage) }));
    const wanted = new Map<Share, Map<number, number[]>>();
    for (const { c } of candidates) {
      for (const p of c.parts) {
        if (!("group" in p)) continue;
        let m = wanted.get(p.share);
        if (!m) wanted.set(p.share, m = new Map());
        m.set(p.group.index, []);
      }
    }
    for (const [share, m] of wanted) {
      const gi = share.group;
      for (let i = 0; i < gi.length; i++) m.get(gi[i])?.push(i);
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
      p: [] as number[],
    };
    const tried: { c: Coalesced; threshold: number }[] = [];
    for (const { c, usage } of candidates) {
      const steps: Step[] = [];
      for (const p of c.parts) {
        if ("group" in p) {
          const sh = p.share;
          for (const i of wanted.get(sh)!.get(p.group.index)!) {
            steps.push({
              bytes: sh.bytes[i],
              quota: p.group.user.quota,
              partition: sh.partition,
              offset: sh.offset[i],
              timeMs: sh.time[i],
              consumedMs: sh.consumed[i],
            });
          }
        } else {
          // A share folded from its row: its events are gone, its last one stands for all.
          const r = p.orphan;
          steps.push({
            bytes: Number(r.usages[p.k]),
            quota: c.quota,
            partition: Number(r.partition),
            offset: Number(r.last_offset),
            timeMs: Number(r.last_time),
            consumedMs: Number(r.created_ms),
          });
        }
      }
      const mask = this.#mask(c);
      const alerted = (t: number) => (mask & (1 << o.thresholds.indexOf(t))) !== 0;
      for (const x of crossings(usage - c.sum, steps, o.thresholds, alerted)) {
        const s = steps[x.index];
        tried.push({ c, threshold: x.threshold });
        cols.h.push(c.hour);
        cols.email.push(c.email);
        cols.t.push(String(x.threshold));
        cols.quota.push(x.quota);
        cols.usage.push(x.usage);
        cols.c.push(s.timeMs);
        cols.o.push(s.offset);
        cols.w.push(s.consumedMs);
        cols.p.push(s.partition);
      }
    }
    if (tried.length === 0) return { raised, known };
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
      intArray(cols.p),
      o.topic,
      textArray([...o.outputs]),
      o.holder.id,
    ]);
    const inserted = new Map(
      rows.map((r) => [`${Number(r.h)}|${r.email}|${Number(r.threshold)}`, r]),
    );
    for (let k = 0; k < tried.length; k++) {
      const x = tried[k];
      known.push(x);
      const r = inserted.get(`${x.c.hour}|${x.c.email}|${x.threshold}`);
      if (!r) continue; // another instance's fold (or the batch layer) got there first
      raised.push({
        alert: {
          id: Number(r.id),
          email: x.c.email,
          hour: x.c.hour,
          threshold: x.threshold,
          quota: cols.quota[k],
          usage: cols.usage[k],
          crossedAt: cols.c[k],
          detectedAt: r.detected_at.getTime(),
          source: "speed",
          partition: cols.p[k],
          offset: cols.o[k],
        },
        consumedAt: cols.w[k],
      });
    }
    return { raised, known };
  }
}
