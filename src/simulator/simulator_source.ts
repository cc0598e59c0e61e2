/**
 * The in-process EventSource used when no Kafka is configured, replayable like
 * a topic. Each partition follows a timeline (timeline.ts) recorded in a
 * store (the database in `start`): offset o is issued at a time the timeline
 * gives, and its message is derived from the seed, the partition and the
 * offset (message_at.ts), so asking again for an offset after a restart gives
 * the same bytes, and the speed layer's replays (below its stored offsets)
 * find what they counted. Keys are device ids drawn among the devices Kafka's
 * partitioner puts on the partition.
 *
 * The end of a partition is what its timeline has issued by the wall clock:
 * the time the pipeline was down is a backlog delivered as fast as the
 * consumer takes it (bounded batches, the next one after `onBatch` resolves),
 * capped at `max_backlog` when the source starts. Before delivering past an
 * offset the source records that it may have issued it (`reserve`), so a new
 * segment (new parameters, a skipped backlog) never starts below anything
 * delivered.
 */
import { delay } from "../async/delay.ts";
import type { SimulatorPlan } from "../config/plan.ts";
import type { EventSource, SourceHandlers, SourceMessage } from "../speed/mod.ts";
import { log, type Logger } from "../log.ts";
import {
  createMessageAt,
  MESSAGE_SCHEME,
  type MessageAt,
  type MessageParams,
} from "./message_at.ts";
import {
  endOffsetAt,
  partitionRate,
  RATE_ZERO_NOMINAL,
  type Segment,
  segmentOf,
  segmentTimeMs,
  type StartDecision,
  startSegment,
} from "./timeline.ts";
import type { TimelineStore } from "./timeline_store.ts";

export interface SimulatorSourceOptions {
  readonly simulator: SimulatorPlan;
  /** Where the timeline is recorded: `createDbTimelineStore(db, topic)`, or memory in tests. */
  readonly timeline: TimelineStore;
  /** Partitions to spread devices over. Default 3 (the plan's Kafka default). */
  readonly partitions?: number;
  /** Size the `oversized` malformed kind exceeds (the plan's schema limit). Default 65 536. */
  readonly maxPayloadBytes?: number;
  /** How often a caught-up partition looks for newly issued messages, ms. Default 100. */
  readonly tickMs?: number;
  /** Most messages in one batch. Default 5 000. */
  readonly maxBatch?: number;
  /** Wall clock, epoch ms. Default Date.now. */
  readonly now?: () => number;
  /** Default: the process logger with `component: "simulator_source"`. */
  readonly log?: Logger;
}

export interface SimulatorSource extends EventSource {
  /** Offsets committed so far (next offset to read, per partition). */
  committed(): ReadonlyMap<number, number>;
}

/** Issued ends are reserved this far ahead of the wall clock... */
const RESERVE_AHEAD_MS = 3_000;
/** ...and, while catching up, this many batches ahead of delivery. */
const RESERVE_BATCHES = 4;
/** Pause after a failed reservation (the database is down) before trying again. */
const RETRY_MS = 1_000;

interface Partition {
  readonly partition: number;
  segments: Segment[];
  /** Next offset to deliver. */
  pos: number;
  /** Offsets below may be delivered (recorded as issued). */
  reserved: number;
  /** How far past `pos` a reservation reaches while catching up. */
  readonly chunk: number;
}

/**
 * Creates the simulator source.
 *
 * @example
 * const timeline = createDbTimelineStore(db, plan.source.kafka.topic);
 * const source = createSimulatorSource({ simulator: plan.source.simulator, timeline });
 * await source.start({ onBatch, onAssign, onRevoke });
 */
export function createSimulatorSource(opts: SimulatorSourceOptions): SimulatorSource {
  const sim = opts.simulator;
  const store = opts.timeline;
  const partitions = opts.partitions ?? 3;
  const tickMs = opts.tickMs ?? 100;
  const maxBatch = opts.maxBatch ?? 5_000;
  const clock = opts.now ?? Date.now;
  const srcLog = opts.log ?? log.child({ component: "simulator_source" });
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  }
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
  }
  const params: MessageParams = {
    scheme: MESSAGE_SCHEME,
    seed: sim.seed,
    partitions,
    devices: sim.devices,
    antennas: sim.antennas,
    apps: [...sim.apps],
    lateShare: sim.lateShare,
    malformedShare: sim.malformedShare,
    maxLatenessMs: Math.max(1, sim.maxLatenessMs),
    maxPayloadBytes: opts.maxPayloadBytes ?? 65_536,
  };
  const totalRate = sim.rate > 0 ? sim.rate : RATE_ZERO_NOMINAL;
  const all = Array.from({ length: partitions }, (_, p) => p);
  const parts = new Map<number, Partition>();
  const committed = new Map<number, number>();
  // One derivation per parameter set: segments that share parameters share it.
  const derivations = new Map<string, MessageAt>();
  const messageAt = (s: Segment): MessageAt => {
    const k = JSON.stringify(s.params);
    let at = derivations.get(k);
    if (!at) derivations.set(k, at = createMessageAt(s.params));
    return at;
  };

  let handlers: SourceHandlers | undefined;
  let paused = false;
  let stopping = false;
  let loops: Promise<void>[] = [];
  // A resume or a stop ends every sleep at once: it aborts the signal the
  // sleeps wait on, and later sleeps wait on a new one.
  let wake = new AbortController();
  const wakeAll = () => {
    wake.abort();
    wake = new AbortController();
  };
  const sleep = (ms: number) => delay(ms, { signal: wake.signal }).catch(() => {});

  // ---- reservations: one write for every partition that needs one ----------

  let reservation: Promise<void> | undefined;
  let reserveFailing = false;
  /** Raises the issued ends; calls while one write is in flight share it. */
  function reserve(): Promise<void> {
    reservation ??= writeReservation().finally(() => reservation = undefined);
    return reservation;
  }

  async function writeReservation(): Promise<void> {
    const now = clock();
    const ends = new Map<number, number>();
    for (const st of parts.values()) {
      const target = Math.min(endOffsetAt(st.segments, now + RESERVE_AHEAD_MS), st.pos + st.chunk);
      if (target > st.reserved) ends.set(st.partition, target);
    }
    if (ends.size === 0) return;
    try {
      await store.reserve(ends);
    } catch (error) {
      if (!reserveFailing) {
        reserveFailing = true;
        srcLog.warn("simulator timeline store unavailable; delivery waits", { error });
      }
      throw error;
    }
    for (const [p, end] of ends) parts.get(p)!.reserved = end;
    if (reserveFailing) {
      reserveFailing = false;
      srcLog.info("simulator timeline store resumed");
    }
  }

  // ---- delivery ---------------------------------------------------------------

  function build(st: Partition, from: number, to: number): SourceMessage[] {
    const out: SourceMessage[] = [];
    let seg = segmentOf(st.segments, from);
    let at = messageAt(seg);
    for (let o = from; o < to; o++) {
      const s = segmentOf(st.segments, o);
      if (s !== seg) {
        seg = s;
        at = messageAt(s);
      }
      const m = at(st.partition, o, segmentTimeMs(seg, o));
      out.push({ partition: st.partition, offset: o, key: m.keyBytes, value: m.value });
    }
    return out;
  }

  async function deliver(st: Partition, messages: SourceMessage[], end: number): Promise<void> {
    const batch = { partition: st.partition, messages, highWatermark: end };
    // Like a Kafka consumer that has not committed: the same batch comes again.
    while (!stopping) {
      try {
        await handlers!.onBatch(batch);
        return;
      } catch (error) {
        srcLog.error("onBatch failed; delivering the batch again in 1 s", {
          partition: st.partition,
          error,
        });
        await sleep(1_000);
      }
    }
  }

  async function run(st: Partition): Promise<void> {
    while (!stopping) {
      if (paused) {
        await sleep(tickMs);
        continue;
      }
      const issued = endOffsetAt(st.segments, clock());
      const to = Math.min(issued, st.pos + maxBatch);
      if (to <= st.pos) {
        await sleep(tickMs);
        continue;
      }
      if (to > st.reserved) {
        try {
          await reserve();
        } catch {
          await sleep(RETRY_MS);
        }
        continue;
      }
      await deliver(st, build(st, st.pos, to), issued);
      if (stopping) break;
      st.pos = to;
      // Reserve ahead before it is needed, so delivery rarely waits for it.
      if (st.reserved - st.pos < st.chunk / 2) reserve().catch(() => {});
      // A consumer that resolves at once must not starve timers and I/O.
      await sleep(0);
    }
  }

  // ---- start: the timeline of every partition ---------------------------------

  function logDecisions(decisions: Map<number, StartDecision>): void {
    const skipped = [...decisions].filter(([, d]) => d.skipped);
    if (skipped.length > 0) {
      const events = skipped.reduce((n, [, d]) => n + d.skipped!.events, 0);
      const ms = Math.max(...skipped.map(([, d]) => d.skipped!.ms));
      srcLog.warn("simulator backlog longer than source.simulator.max_backlog: gap skipped", {
        skipped_events: events,
        skipped_seconds: Math.round(ms / 1000),
        max_backlog_seconds: Math.round(sim.maxBacklogMs / 1000),
        partitions: Object.fromEntries(
          skipped.map(([p, d]) => [p, { from_offset: d.segment!.fromOffset, ...d.skipped }]),
        ),
      });
    }
    const changed = [...decisions].filter(([, d]) => d.reason === "changed");
    if (changed.length > 0) {
      srcLog.info("simulator parameters changed: new timeline segment", {
        partitions: Object.fromEntries(changed.map(([p, d]) => [p, d.segment!.fromOffset])),
      });
    }
  }

  return {
    kind: "simulator",

    async start(h: SourceHandlers): Promise<void> {
      if (handlers) throw new Error("simulator source already started");
      handlers = h;
      const starts = (await h.onAssign(all)) ?? new Map<number, number>();
      const recorded = await store.load(all);
      const now = clock();
      const decisions = new Map<number, StartDecision>();
      for (const p of all) {
        const rec = recorded.get(p) ?? { segments: [], issuedEnd: 0 };
        const rate = partitionRate(totalRate, sim.devices, partitions, p);
        const decision = startSegment({
          segments: rec.segments,
          issuedEnd: rec.issuedEnd,
          resumeOffset: starts.get(p) ?? 0,
          rate,
          params,
          nowMs: now,
          maxBacklogMs: sim.maxBacklogMs,
          // "As fast as possible" starts with a history to read that fast.
          firstOriginBehindMs: sim.rate > 0 ? sim.historyMs : sim.maxBacklogMs,
        });
        decisions.set(p, decision);
        const segments = rec.segments.filter((s) => s.fromOffset !== decision.segment?.fromOffset);
        if (decision.segment) segments.push(decision.segment);
        parts.set(p, {
          partition: p,
          segments,
          pos: starts.get(p) ?? 0,
          reserved: rec.issuedEnd,
          chunk: Math.max(RESERVE_BATCHES * maxBatch, Math.ceil((rate * RESERVE_AHEAD_MS) / 1000)),
        });
      }
      await store.record(
        new Map(
          [...decisions].flatMap(([p, d]) => d.segment ? [[p, d.segment] as const] : []),
        ),
      );
      logDecisions(decisions);
      const ends = Object.fromEntries(
        all.map((p) => [p, endOffsetAt(parts.get(p)!.segments, now)]),
      );
      srcLog.info("simulator source started", {
        partitions,
        rate: sim.rate,
        devices: sim.devices,
        antennas: sim.antennas,
        starts: Object.fromEntries(all.map((p) => [p, parts.get(p)!.pos])),
        ends,
        backlog: all.reduce((n, p) => n + Math.max(0, ends[p] - parts.get(p)!.pos), 0),
      });
      loops = [...parts.values()].map(run);
    },

    commit(offsets: ReadonlyMap<number, number>): Promise<void> {
      for (const [p, o] of offsets) if (p >= 0 && p < partitions) committed.set(p, o);
      return Promise.resolve();
    },

    pause(): void {
      paused = true;
    },

    resume(): void {
      paused = false;
      wakeAll();
    },

    lag(): Promise<ReadonlyMap<number, number>> {
      const now = clock();
      return Promise.resolve(
        new Map(all.map((p) => {
          const st = parts.get(p);
          return [p, st ? Math.max(0, endOffsetAt(st.segments, now) - st.pos) : 0];
        })),
      );
    },

    endOffsets(): Promise<ReadonlyMap<number, number>> {
      const now = clock();
      return Promise.resolve(
        new Map(all.map((p) => {
          const st = parts.get(p);
          return [p, st ? endOffsetAt(st.segments, now) : 0];
        })),
      );
    },

    committed: () => new Map(committed),

    async stop(): Promise<void> {
      if (stopping) return;
      stopping = true;
      wakeAll();
      await Promise.all(loops);
      await reservation?.catch(() => {});
      if (handlers) await handlers.onRevoke(all);
    },
  };
}
