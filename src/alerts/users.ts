/**
 * The user cache of the alert detector: device id → the email it belongs to
 * and that email's hourly quota, loaded from `user_metadata` and reloaded
 * every `refresh_interval`, so a quota or email changed there reaches the
 * running process without a restart. Quotas are per email as the batch layer
 * defines them (core/quota.ts: the largest of the email's devices').
 */
import { type Queryable, readUserQuotas, usersFingerprint } from "../db/mod.ts";
import { quotasByEmail } from "../core/quota.ts";
import type { Logger } from "../log.ts";
import { pause } from "../async/delay.ts";
import type { AlertTelemetry } from "./telemetry.ts";

/**
 * One user (email) as the detector sees it; one object shared by all of the
 * email's devices, so the detector sums a take's events on it directly (its
 * `scratch` fields) instead of in a map of its own: a map lookup a device is
 * the cost that matters at 100,000 devices.
 */
export class UserEntry {
  /** The detector's take this scratch belongs to (0: none). */
  take = 0;
  /** The hour the scratch group is for. */
  hour = NaN;
  /** The index of the detector's group of this take and hour. */
  index = 0;
  /** Hour → bit mask of thresholds known to have an alert (a filter; the table decides). */
  alerted: Map<number, number> | undefined = undefined;

  constructor(
    readonly email: string,
    /** Hourly quota, bytes. */
    readonly quota: number,
    /** A small integer of its own, the same for the email across reloads (array index). */
    readonly slot: number,
  ) {}
}

export class UserDirectory {
  #devices = new Map<string, UserEntry>();
  #byEmail = new Map<string, UserEntry>();
  /** Users by slot, for shares that carry slots, not objects (never shrinks: see atSlot). */
  readonly #bySlot: (UserEntry | undefined)[] = [];
  /** What the table looked like at the last load (see refresh). */
  #fingerprint = "";
  /** Slots are never reused: an email keeps its slot for the life of the process. */
  readonly #slots = new Map<string, number>();
  #loadedAt = -Infinity;
  #ac = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(
    readonly db: Queryable,
    readonly log: Logger,
    readonly telemetry?: AlertTelemetry,
  ) {}

  /** The user of a device; undefined for a device without metadata (never alerts). */
  lookup(deviceId: string): UserEntry | undefined {
    return this.#devices.get(deviceId);
  }

  /**
   * The user of a slot: its current entry, or the last one it had when its
   * email has left user_metadata since (a share counted its events before
   * that); undefined for a slot never given out.
   */
  atSlot(slot: number): UserEntry | undefined {
    return this.#bySlot[slot];
  }

  /** The user of an email; undefined for an email without user metadata. */
  userOf(email: string): UserEntry | undefined {
    return this.#byEmail.get(email);
  }

  /** The email's slot (assigned on first sight). */
  slotOf(email: string): number {
    let slot = this.#slots.get(email);
    if (slot === undefined) this.#slots.set(email, slot = this.#slots.size);
    return slot;
  }

  /** Wall time of the last successful load (epoch ms). */
  get loadedAt(): number {
    return this.#loadedAt;
  }

  get size(): { devices: number; emails: number } {
    return { devices: this.#devices.size, emails: this.#byEmail.size };
  }

  /**
   * Loads user_metadata now, unless its fingerprint (row count and a hash of
   * every row, computed by the database) says nothing changed since the last
   * load: reading and indexing 100,000 users every interval would cost the
   * speed layer's thread more than the alerts themselves. The previous cache
   * stays if it fails.
   */
  async refresh(): Promise<void> {
    const fp = await usersFingerprint(this.db);
    if (fp === this.#fingerprint) {
      this.#loadedAt = Date.now();
      return;
    }
    const rows = await readUserQuotas(this.db);
    this.#fingerprint = fp;
    const quotas = quotasByEmail(rows.map((r) => ({ email: r.email, quota: r.quota })));
    const entries = new Map<string, UserEntry>();
    for (const [email, quota] of quotas) {
      // An unchanged user keeps its entry (and what the detector knows of its alerts).
      const prev = this.#byEmail.get(email);
      entries.set(
        email,
        prev && prev.quota === quota ? prev : new UserEntry(email, quota, this.slotOf(email)),
      );
    }
    const devices = new Map<string, UserEntry>();
    for (const r of rows) devices.set(r.id, entries.get(r.email)!);
    for (const u of entries.values()) this.#bySlot[u.slot] = u;
    this.#devices = devices;
    this.#byEmail = entries;
    this.#loadedAt = Date.now();
    this.telemetry?.devices.set(devices.size);
    this.telemetry?.emails.set(entries.size);
  }

  /** Loads once (throws if that fails), then reloads every `everyMs` until `stop()`. */
  async start(everyMs: number): Promise<void> {
    await this.refresh();
    const signal = this.#ac.signal;
    this.#loop = (async () => {
      while (!signal.aborted) {
        await pause(everyMs, signal);
        if (signal.aborted) break;
        try {
          await this.refresh();
        } catch (error) {
          this.log.warn("quota alerts: could not reload user_metadata, keeping the last", {
            error,
          });
        }
      }
    })();
  }

  async stop(): Promise<void> {
    this.#ac.abort();
    await this.#loop;
  }
}
