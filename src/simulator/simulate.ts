/**
 * The `simulate` loop: generator → Kafka producer, paced by the wall clock
 * (live) or as fast as possible (simulated event time with `startMs`), with
 * progress lines and a summary. The CLI (src/cli/simulate.ts) only parses flags into this.
 */
import { delay } from "../async/delay.ts";
import type { DeadLetterReason } from "../core/event.ts";
import {
  createOutageRetry,
  createProducer,
  ensureTopics,
  type OutgoingMessage,
  type Producer,
} from "../kafka/mod.ts";
import { log } from "../log.ts";
import { createGenerator, type Generator, type GeneratorOptions } from "./generator.ts";

export interface SimulateOptions {
  readonly brokers: readonly string[];
  readonly topic: string;
  readonly clientId?: string;
  /** Create the topic when missing, with `partitions` partitions. */
  readonly createTopic: boolean;
  readonly partitions: number;
  /** Generator settings; `startMs` switches to simulated event time. */
  readonly generator: GeneratorOptions;
  /** Live pace in events/s (0 = as fast as possible); ignored with `generator.startMs`. */
  readonly rate: number;
  /** Stop after this many messages. */
  readonly count?: number;
  /** Stop after this long: wall clock when live, event time with `startMs`. */
  readonly durationMs?: number;
  /** Progress line interval, ms; 0 = none. Default 5 000. */
  readonly progressMs?: number;
  /**
   * While Kafka is unreachable, keep the messages and retry for at most this
   * long, ms; 0 = fail after kafkajs' own retries. Default 0.
   */
  readonly maxRetryTimeMs?: number;
  /**
   * Aborting stops after the batch in flight (Ctrl-C); while Kafka is
   * unreachable, at once, with an error.
   */
  readonly signal?: AbortSignal;
}

export interface SimulateSummary {
  readonly topic: string;
  readonly produced: number;
  readonly valid: number;
  readonly late: number;
  readonly malformed: number;
  readonly malformedByKind: Partial<Record<DeadLetterReason, number>>;
  /** Event-time range of valid events (ISO), when any. */
  readonly firstEventTime?: string;
  readonly lastEventTime?: string;
  readonly elapsedMs: number;
  /** Messages per second actually produced. */
  readonly rate: number;
}

const simLog = log.child({ component: "simulate" });
/** Messages per produce call when not paced: big enough to amortise a round trip. */
const CHUNK = 5_000;
const TICK_MS = 100;

/**
 * Produces simulated events until the count, the duration or the signal.
 * A broker that is not up yet is waited for like one that goes away during
 * the run (bounded by `maxRetryTimeMs`); a missing topic with `createTopic`
 * off is a UserError at once.
 *
 * @example
 * await simulate({ brokers: ["127.0.0.1:19092"], topic: "devices", createTopic: true,
 *   partitions: 3, rate: 0, count: 1000, generator: { seed: 42 } });
 */
export async function simulate(opts: SimulateOptions): Promise<SimulateSummary> {
  const end = runEnd(opts);
  // Before connecting: a bad generator setting should not wait for Kafka first.
  const tally = createTally(createGenerator(opts.generator));
  const producer = await connect(opts);
  const t0 = performance.now();
  let produced: number;
  try {
    produced = await produceAll(opts, producer, tally.take, end, t0);
  } finally {
    await producer.close();
  }
  return tally.summary(opts.topic, produced, Math.round(performance.now() - t0));
}

/** When the run ends: after `limit` messages or at `deadline` (performance.now() time). */
interface RunEnd {
  readonly limit: number;
  readonly deadline: number;
}

function runEnd(opts: SimulateOptions): RunEnd {
  const eventRate = opts.generator.rate ?? 100;
  if (opts.durationMs === undefined) return { limit: opts.count ?? Infinity, deadline: Infinity };
  // Simulated event time advances by message, not by clock: its duration is a count.
  if (opts.generator.startMs !== undefined) {
    return { limit: Math.ceil((opts.durationMs * eventRate) / 1000), deadline: Infinity };
  }
  return { limit: opts.count ?? Infinity, deadline: performance.now() + opts.durationMs };
}

/**
 * The topic, then the producer, through one outage retry: whichever step
 * first finds the broker away, the outage is logged once and waited out.
 */
async function connect(opts: SimulateOptions): Promise<Producer> {
  const outageRetry = createOutageRetry(opts);
  await outageRetry(() =>
    ensureTopics({
      brokers: opts.brokers,
      topics: [{ topic: opts.topic, partitions: opts.partitions }],
      create: opts.createTopic,
      quietRetries: outageRetry.maxRetryTimeMs > 0,
    })
  );
  return await createProducer({
    brokers: opts.brokers,
    clientId: opts.clientId ?? "antenna-lambda-simulator",
    outageRetry,
  });
}

/** Sends chunks taken from `take`, one on the wire while the next is generated; returns the count. */
async function produceAll(
  opts: SimulateOptions,
  producer: Producer,
  take: (n: number) => OutgoingMessage[],
  end: RunEnd,
  t0: number,
): Promise<number> {
  const paced = opts.generator.startMs === undefined && opts.rate > 0;
  const pace = createPacer(opts.rate, t0);
  const progress = createProgress(opts.topic, opts.progressMs ?? 5_000, t0);
  let produced = 0;
  let inFlight: Promise<void> | undefined;
  let inFlightCount = 0;
  while (!opts.signal?.aborted && produced + inFlightCount < end.limit) {
    const now = performance.now();
    if (now >= end.deadline) break;
    let n = Math.min(CHUNK, end.limit - produced - inFlightCount);
    if (paced) n = pace(now, n);
    const chunk = n > 0 ? take(n) : [];
    if (inFlight) {
      await inFlight;
      produced += inFlightCount;
    }
    inFlight = chunk.length > 0 ? producer.send(opts.topic, chunk) : undefined;
    inFlightCount = chunk.length;
    progress(now, produced);
    // An abort ends the tick early; the loop then sees the signal and stops.
    if (paced) await delay(TICK_MS, { signal: opts.signal }).catch(() => {});
  }
  if (inFlight) {
    await inFlight;
    produced += inFlightCount;
  }
  return produced;
}

/** How many of `wanted` messages the live pace allows at `now`. */
function createPacer(rate: number, t0: number): (now: number, wanted: number) => number {
  let budget = 0;
  let last = t0;
  return (now, wanted) => {
    // Up to 5 s of catch-up if Kafka stalls, so the long-run rate stays honest.
    budget = Math.min(budget + ((now - last) * rate) / 1000, rate * 5);
    last = now;
    const n = Math.min(wanted, Math.floor(budget));
    budget -= n;
    return n;
  };
}

/** Logs a progress line at most every `progressMs` (0 = never). */
function createProgress(
  topic: string,
  progressMs: number,
  t0: number,
): (now: number, produced: number) => void {
  let lastProgress = t0;
  let lastProgressCount = 0;
  return (now, produced) => {
    if (progressMs <= 0 || now - lastProgress < progressMs) return;
    simLog.info("simulate progress", {
      topic,
      produced,
      rate: Math.round(((produced - lastProgressCount) * 1000) / (now - lastProgress)),
    });
    lastProgress = now;
    lastProgressCount = produced;
  };
}

/** The generator's items as messages, counted by kind as they are taken. */
function createTally(gen: Generator) {
  let valid = 0, late = 0, malformed = 0;
  let minTs = Infinity, maxTs = -Infinity;
  const byKind: Partial<Record<DeadLetterReason, number>> = {};
  const take = (n: number): OutgoingMessage[] => {
    const out: OutgoingMessage[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const item = gen.next();
      out[i] = { key: item.key, value: item.value };
      if (item.event) {
        valid++;
        if (item.late) late++;
        if (item.event.timestamp < minTs) minTs = item.event.timestamp;
        if (item.event.timestamp > maxTs) maxTs = item.event.timestamp;
      } else if (item.malformed) {
        malformed++;
        byKind[item.malformed] = (byKind[item.malformed] ?? 0) + 1;
      }
    }
    return out;
  };
  const summary = (topic: string, produced: number, elapsedMs: number): SimulateSummary => {
    const iso = (s: number) => new Date(s * 1000).toISOString();
    return {
      topic,
      produced,
      valid,
      late,
      malformed,
      malformedByKind: byKind,
      firstEventTime: valid > 0 ? iso(minTs) : undefined,
      lastEventTime: valid > 0 ? iso(maxTs) : undefined,
      elapsedMs,
      rate: elapsedMs > 0 ? Math.round((produced * 1000) / elapsedMs) : produced,
    };
  };
  return { take, summary };
}
