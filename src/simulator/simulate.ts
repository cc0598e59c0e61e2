/**
 * The `simulate` loop: generator → Kafka producer, paced by the wall clock
 * (live) or as fast as possible (simulated event time with `startMs`), with
 * progress lines and a summary. The CLI (cli.ts) only parses flags into this.
 */
import { delay } from "../async/delay.ts";
import type { DeadLetterReason } from "../core/event.ts";
import { createProducer, ensureTopics, type OutgoingMessage } from "../kafka/mod.ts";
import { log } from "../log.ts";
import { createGenerator, type GeneratorOptions } from "./generator.ts";

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
 *
 * @example
 * await simulate({ brokers: ["127.0.0.1:19092"], topic: "devices", createTopic: true,
 *   partitions: 3, rate: 0, count: 1000, generator: { seed: 42 } });
 */
export async function simulate(opts: SimulateOptions): Promise<SimulateSummary> {
  const startMs = opts.generator.startMs;
  const eventRate = opts.generator.rate ?? 100;
  let limit = opts.count ?? Infinity;
  let deadline = Infinity;
  if (opts.durationMs !== undefined) {
    if (startMs !== undefined) limit = Math.ceil((opts.durationMs * eventRate) / 1000);
    else deadline = performance.now() + opts.durationMs;
  }
  const paced = startMs === undefined && opts.rate > 0;
  const progressMs = opts.progressMs ?? 5_000;

  if (opts.createTopic) {
    await ensureTopics({
      brokers: opts.brokers,
      topics: [{ topic: opts.topic, partitions: opts.partitions }],
    });
  }
  const producer = await createProducer({
    brokers: opts.brokers,
    clientId: opts.clientId ?? "antenna-lambda-simulator",
    maxRetryTimeMs: opts.maxRetryTimeMs,
    signal: opts.signal,
  });
  const gen = createGenerator(opts.generator);
  let produced = 0, valid = 0, late = 0, malformed = 0;
  let minTs = Infinity, maxTs = -Infinity;
  const byKind: Partial<Record<DeadLetterReason, number>> = {};
  const t0 = performance.now();
  let lastProgress = t0;
  let lastProgressCount = 0;

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

  try {
    let budget = 0;
    let last = t0;
    let inFlight: Promise<void> | undefined;
    let inFlightCount = 0;
    while (!opts.signal?.aborted && produced + inFlightCount < limit) {
      const now = performance.now();
      if (now >= deadline) break;
      let n = Math.min(CHUNK, limit - produced - inFlightCount);
      if (paced) {
        // Up to 5 s of catch-up if Kafka stalls, so the long-run rate stays honest.
        budget = Math.min(budget + ((now - last) * opts.rate) / 1000, opts.rate * 5);
        last = now;
        n = Math.min(n, Math.floor(budget));
        budget -= n;
      }
      // Generate the next chunk while the previous one is on the wire.
      const chunk = n > 0 ? take(n) : [];
      if (inFlight) {
        await inFlight;
        produced += inFlightCount;
      }
      inFlight = chunk.length > 0 ? producer.send(opts.topic, chunk) : undefined;
      inFlightCount = chunk.length;
      if (progressMs > 0 && now - lastProgress >= progressMs) {
        simLog.info("simulate progress", {
          topic: opts.topic,
          produced,
          rate: Math.round(((produced - lastProgressCount) * 1000) / (now - lastProgress)),
        });
        lastProgress = now;
        lastProgressCount = produced;
      }
      // An abort ends the tick early; the loop then sees the signal and stops.
      if (paced) await delay(TICK_MS, { signal: opts.signal }).catch(() => {});
    }
    if (inFlight) {
      await inFlight;
      produced += inFlightCount;
    }
  } finally {
    await producer.close();
  }
  const elapsedMs = Math.round(performance.now() - t0);
  const iso = (s: number) => new Date(s * 1000).toISOString();
  return {
    topic: opts.topic,
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
}
