/**
 * The live feed behind the API's Server-Sent Events stream: every alert once,
 * as soon as it is durable. This process's alerts come straight from the
 * commit that made them durable; another instance's from a poll of
 * `quota_alerts` by detection time (`raised_by` another process) that runs
 * only while someone listens. Ids are not in commit order across concurrent
 * transactions, so the poll reads a window back in time and the feed drops
 * what it already sent.
 */
import type { Queryable } from "../db/db.ts";
import type { Logger } from "../log.ts";
import { pause } from "../async/delay.ts";
import { alertsAfter, alertsDetectedSince, alertsOfHoursFrom } from "./store.ts";
import type { AlertTelemetry } from "./telemetry.ts";
import type { QuotaAlert } from "./types.ts";

/** How far back each poll looks: longer than a flush transaction lasts. */
const OVERLAP_MS = 30_000;

export interface AlertFeed {
  /** Calls `listener` with each new alert until the returned function is called. */
  subscribe(listener: (alert: QuotaAlert) => void): () => void;
  /** Stored alerts with an id above `afterId`, oldest first (a client resuming). */
  after(afterId: number, limit?: number): Promise<QuotaAlert[]>;
  /**
   * Stored alerts of the hours from `fromHour` on with an id above `afterId`,
   * oldest first (a client connecting fresh catches up with the current hour).
   */
  ofHoursFrom(fromHour: number, afterId?: number, limit?: number): Promise<QuotaAlert[]>;
  /** Aborted once the feed is closed: streams end then (a server shutdown waits for them). */
  readonly closed: AbortSignal;
  close(): Promise<void>;
}

export interface FeedOptions {
  readonly db: Queryable;
  readonly log: Logger;
  readonly telemetry?: AlertTelemetry;
  /** This process (host:pid): its alerts are published, not polled. */
  readonly self: string;
  /** Poll period while someone listens. Default 1000 ms. */
  readonly pollMs?: number;
}

export class LiveFeed implements AlertFeed {
  readonly #o: FeedOptions;
  readonly #listeners = new Set<(a: QuotaAlert) => void>();
  /** Ids sent, with their detection time (forgotten once older than the overlap). */
  readonly #sent = new Map<number, number>();
  #poll: Promise<void> | undefined;
  #ac: AbortController | undefined;
  #cursor = 0;
  readonly #closed = new AbortController();

  constructor(options: FeedOptions) {
    this.#o = options;
  }

  /** Alerts this process made durable (nobody listening: the next poll finds them). */
  publish(alerts: readonly QuotaAlert[]): void {
    if (this.#listeners.size === 0) return;
    for (const a of alerts) this.#emit(a);
  }

  #emit(a: QuotaAlert): void {
    if (this.#sent.has(a.id)) return;
    this.#sent.set(a.id, a.detectedAt);
    if (a.detectedAt > this.#cursor) this.#cursor = a.detectedAt;
    for (const l of this.#listeners) {
      try {
        l(a);
      } catch (error) {
        this.#o.log.warn("quota alert stream listener failed", { error });
      }
    }
  }

  subscribe(listener: (alert: QuotaAlert) => void): () => void {
    this.#listeners.add(listener);
    this.#o.telemetry?.streamClients.set(this.#listeners.size);
    if (!this.#poll) this.#startPolling();
    return () => {
      this.#listeners.delete(listener);
      this.#o.telemetry?.streamClients.set(this.#listeners.size);
      if (this.#listeners.size === 0) this.#ac?.abort();
    };
  }

  after(afterId: number, limit = 1_000): Promise<QuotaAlert[]> {
    return alertsAfter(this.#o.db, afterId, limit);
  }

  ofHoursFrom(fromHour: number, afterId = 0, limit = 1_000): Promise<QuotaAlert[]> {
    return alertsOfHoursFrom(this.#o.db, fromHour, afterId, limit);
  }

  #startPolling(): void {
    const ac = new AbortController();
    this.#ac = ac;
    this.#cursor = Math.max(this.#cursor, Date.now());
    this.#poll = (async () => {
      while (!ac.signal.aborted) {
        await pause(this.#o.pollMs ?? 1_000, ac.signal);
        if (ac.signal.aborted) break;
        try {
          for (
            const a of await alertsDetectedSince(
              this.#o.db,
              this.#cursor - OVERLAP_MS,
              this.#o.self,
            )
          ) {
            this.#emit(a);
          }
        } catch (error) {
          this.#o.log.debug("quota alert stream: poll failed", { error });
        }
        const old = this.#cursor - 2 * OVERLAP_MS;
        for (const [id, t] of this.#sent) if (t < old) this.#sent.delete(id);
      }
    })().finally(() => {
      if (this.#ac === ac) {
        this.#poll = undefined;
        this.#ac = undefined;
      }
    });
  }

  get closed(): AbortSignal {
    return this.#closed.signal;
  }

  async close(): Promise<void> {
    this.#closed.abort();
    this.#listeners.clear();
    this.#ac?.abort();
    await this.#poll;
  }
}
