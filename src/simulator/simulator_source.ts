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

/** What the steps of one source share: its settings and its running state. */
interface State {
  readonly sim: SimulatorPlan;
  readonly store: TimelineStore;
  readonly partitions: number;
  readonly all: readonly number[];
  readonly tickMs: number;
  readonly maxBatch: number;
  readonly clock: () => number;
  readonly log: Logger;
  readonly params: MessageParams;
  readonly parts: Map<number, Partition>;
  readonly messageAt: (s: Segment) => MessageAt;
  handlers?: SourceHandlers;
  paused: boolean;
  stopping: boolean;
  /** Sleeps of the delivery loops; a resume or a stop ends them all at once. */
  wake: AbortController;
  /** Raises the issued ends (one write shared by concurrent callers). */
  reserve: () => Promise<void>;
  /** The reservation being written, if any. */
  reservation?: Promise<void>;
}

/** The settings checked and the state of a source that has not started. */
function initialState(opts: SimulatorSourceOptions): State {
  const sim = opts.simulator;
  const partitions = opts.partitions ?? 3;
  const maxBatch = opts.maxBatch ?? 5_000;
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  }
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(`maxBatch must be a positive integer, got ${maxBatch}`);
  }
  // One derivation per parameter set: segments that share parameters share it.
  const derivations = new Map<string, MessageAt>();
  const state: State = {
    sim,
    store: opts.timeline,
    partitions,
    all: Array.from({ length: partitions }, (_, p) => p),
    tickMs: opts.tickMs ?? 100,
    maxBatch,
    clock: opts.now ?? Date.now,
    log: opts.log ?? log.child({ component: "simulator_source" }),
    params: {
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
    },
    parts: new Map(),
    messageAt: (seg) => {
      const k = JSON.stringify(seg.params);
      let at = derivations.get(k);
      if (!at) derivations.set(k, at = createMessageAt(seg.params));
      return at;
    },
    paused: false,
    stopping: false,
    wake: new AbortController(),
    reserve: () => Promise.resolve(),
  };
  state.reserve = createReserve(state);
  return state;
}

function wakeAll(st: State): void {
  st.wake.abort();
  st.wake = new AbortController();
}

function sleep(st: State, ms: number): Promise<void> {
  return delay(ms, { signal: st.wake.signal }).catch(() => {});
}

// ---- reservations: one write for every partition that needs one ------------

function createReserve(st: State): () => Promise<void> {
  let failing = false;
  async function write(): Promise<void> {
    const now = st.clock();
    const ends = new Map<number, number>();
    for (const part of st.parts.values()) {
      const target = Math.min(
        endOffsetAt(part.segments, now + RESERVE_AHEAD_MS),
        part.pos + part.chunk,
      );
      if (target > part.reserved) ends.set(part.partition, target);
    }
    if (ends.size === 0) return;
    try {
      await st.store.reserve(ends);
    } catch (error) {
      if (!failing) {
        failing = true;
        st.log.warn("simulator timeline store unavailable; delivery waits", { error });
      }
      throw error;
    }
    for (const [p, end] of ends) st.parts.get(p)!.reserved = end;
    if (failing) {
      failing = false;
      st.log.info("simulator timeline store resumed");
    }
  }
  return () => {
    st.reservation ??= write().finally(() => st.reservation = undefined);
    return st.reservation;
  };
}

// ---- delivery ----------------------------------------------------------------

function build(st: State, part: Partition, from: number, to: number): SourceMessage[] {
  const out: SourceMessage[] = [];
  let seg = segmentOf(part.segments, from);
  let at = st.messageAt(seg);
  for (let o = from; o < to; o++) {
    const s = segmentOf(part.segments, o);
    if (s !== seg) {
      seg = s;
      at = st.messageAt(s);
    }
    const m = at(part.partition, o, segmentTimeMs(seg, o));
    out.push({ partition: part.partition, offset: o, key: m.keyBytes, value: m.value });
  }
  return out;
}

async function deliver(
  st: State,
  part: Partition,
  messages: SourceMessage[],
  end: number,
): Promise<void> {
  const batch = { partition: part.partition, messages, highWatermark: end };
  // Like a Kafka consumer that has not committed: the same batch comes again.
  while (!st.stopping) {
    try {
      await st.handlers!.onBatch(batch);
      return;
    } catch (error) {
      st.log.error("onBatch failed; delivering the batch again in 1 s", {
        partition: part.partition,
        error,
      });
      await sleep(st, 1_000);
    }
  }
}

/** One partition's loop: deliver what its timeline has issued, reserving ahead. */
async function run(st: State, part: Partition): Promise<void> {
  while (!st.stopping) {
    if (st.paused) {
      await sleep(st, st.tickMs);
      continue;
    }
    const issued = endOffsetAt(part.segments, st.clock());
    const to = Math.min(issued, part.pos + st.maxBatch);
    if (to <= part.pos) {
      await sleep(st, st.tickMs);
      continue;
    }
    if (to > part.reserved) {
      try {
        await st.reserve();
      } catch {
        await sleep(st, RETRY_MS);
      }
      continue;
    }
    await deliver(st, part, build(st, part, part.pos, to), issued);
    if (st.stopping) break;
    part.pos = to;
    // Reserve ahead before it is needed, so delivery rarely waits for it.
    if (part.reserved - part.pos < part.chunk / 2) st.reserve().catch(() => {});
    // A consumer that resolves at once must not starve timers and I/O.
    await sleep(st, 0);
  }
}

// ---- start: the timeline of every partition -----------------------------------

/** Each partition's start: its recorded timeline, a new segment if needed, its position. */
async function startTimelines(
  st: State,
  starts: ReadonlyMap<number, number>,
  now: number,
): Promise<Map<number, StartDecision>> {
  const { sim, partitions } = st;
  const totalRate = sim.rate > 0 ? sim.rate : RATE_ZERO_NOMINAL;
  const recorded = await st.store.load(st.all);
  const decisions = new Map<number, StartDecision>();
  for (const p of st.all) {
    const rec = recorded.get(p) ?? { segments: [], issuedEnd: 0 };
    const rate = partitionRate(totalRate, sim.devices, partitions, p);
    const decision = startSegment({
      segments: rec.segments,
      issuedEnd: rec.issuedEnd,
      resumeOffset: starts.get(p) ?? 0,
      rate,
      params: st.params,
      nowMs: now,
      maxBacklogMs: sim.maxBacklogMs,
      // "As fast as possible" starts with a history to read that fast.
      firstOriginBehindMs: sim.rate > 0 ? sim.historyMs : sim.maxBacklogMs,
    });
    decisions.set(p, decision);
    const segments = rec.segments.filter((s) => s.fromOffset !== decision.segment?.fromOffset);
    if (decision.segment) segments.push(decision.segment);
    st.parts.set(p, {
      partition: p,
      segments,
      pos: starts.get(p) ?? 0,
      reserved: rec.issuedEnd,
      chunk: Math.max(RESERVE_BATCHES * st.maxBatch, Math.ceil((rate * RESERVE_AHEAD_MS) / 1000)),
    });
  }
  await st.store.record(
    new Map([...decisions].flatMap(([p, d]) => d.segment ? [[p, d.segment] as const] : [])),
  );
  return decisions;
}

function logDecisions(st: State, decisions: Map<number, StartDecision>): void {
  const skipped = [...decisions].filter(([, d]) => d.skipped);
  if (skipped.length > 0) {
    const events = skipped.reduce((n, [, d]) => n + d.skipped!.events, 0);
    const ms = Math.max(...skipped.map(([, d]) => d.skipped!.ms));
    st.log.warn("simulator backlog longer than source.simulator.max_backlog: gap skipped", {
      skipped_events: events,
      skipped_seconds: Math.round(ms / 1000),
      max_backlog_seconds: Math.round(st.sim.maxBacklogMs / 1000),
      partitions: Object.fromEntries(
        skipped.map(([p, d]) => [p, { from_offset: d.segment!.fromOffset, ...d.skipped }]),
      ),
    });
  }
  const changed = [...decisions].filter(([, d]) => d.reason === "changed");
  if (changed.length > 0) {
    st.log.info("simulator parameters changed: new timeline segment", {
      partitions: Object.fromEntries(changed.map(([p, d]) => [p, d.segment!.fromOffset])),
    });
  }
}

function logStarted(st: State, now: number): void {
  const { all, parts, sim } = st;
  const ends = Object.fromEntries(all.map((p) => [p, endOffsetAt(parts.get(p)!.segments, now)]));
  st.log.info("simulator source started", {
    partitions: st.partitions,
    rate: sim.rate,
    devices: sim.devices,
    antennas: sim.antennas,
    starts: Object.fromEntries(all.map((p) => [p, parts.get(p)!.pos])),
    ends,
    backlog: all.reduce((n, p) => n + Math.max(0, ends[p] - parts.get(p)!.pos), 0),
  });
}

/** Per partition: `of(partition)` of its state, 0 before the start. */
function perPartition(st: State, of: (part: Partition) => number): ReadonlyMap<number, number> {
  return new Map(st.all.map((p) => {
    const part = st.parts.get(p);
    return [p, part ? of(part) : 0];
  }));
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
  const st = initialState(opts);
  const committed = new Map<number, number>();
  let loops: Promise<void>[] = [];
  return {
    kind: "simulator",

    async start(h: SourceHandlers): Promise<void> {
      if (st.handlers) throw new Error("simulator source already started");
      st.handlers = h;
      const starts = (await h.onAssign(st.all)) ?? new Map<number, number>();
      const now = st.clock();
      logDecisions(st, await startTimelines(st, starts, now));
      logStarted(st, now);
      loops = [...st.parts.values()].map((part) => run(st, part));
    },

    commit(offsets: ReadonlyMap<number, number>): Promise<void> {
      for (const [p, o] of offsets) if (p >= 0 && p < st.partitions) committed.set(p, o);
      return Promise.resolve();
    },

    pause(): void {
      st.paused = true;
    },

    resume(): void {
      st.paused = false;
      wakeAll(st);
    },

    lag(): Promise<ReadonlyMap<number, number>> {
      const now = st.clock();
      return Promise.resolve(
        perPartition(st, (part) => Math.max(0, endOffsetAt(part.segments, now) - part.pos)),
      );
    },

    endOffsets(): Promise<ReadonlyMap<number, number>> {
      const now = st.clock();
      return Promise.resolve(perPartition(st, (part) => endOffsetAt(part.segments, now)));
    },

    committed: () => new Map(committed),

    async stop(): Promise<void> {
      if (st.stopping) return;
      st.stopping = true;
      wakeAll(st);
      await Promise.all(loops);
      await st.reservation?.catch(() => {});
      if (st.handlers) await st.handlers.onRevoke(st.all);
    },
  };
}
