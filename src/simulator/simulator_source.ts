/**
 * The in-process EventSource used when no Kafka is configured: the generator
 * run live at the plan's rate, its messages spread over partitions with
 * Kafka's keyed partitioner and numbered with consecutive offsets per
 * partition, so the speed layer runs exactly as it would on a real topic.
 * Nothing is stored: offsets returned by `onAssign` only continue the
 * numbering (the speed layer persists its own progress), and generation is
 * always "caught up" (lag 0). If the consumer falls behind, the simulated
 * antennas slow down with it instead of building a backlog.
 */
import type { SimulatorPlan } from "../config/plan.ts";
import type { EventSource, SourceHandlers, SourceMessage } from "../kafka/source.ts";
import { log } from "../log.ts";
import { createGenerator } from "./generator.ts";
import { keyPartition } from "./murmur2.ts";

export interface SimulatorSourceOptions {
  readonly simulator: SimulatorPlan;
  /** Partitions to spread devices over. Default 3 (the plan's Kafka default). */
  readonly partitions?: number;
  /** Size the `oversized` malformed kind exceeds (the plan's schema limit). Default 65 536. */
  readonly maxPayloadBytes?: number;
  /** How often a live batch is generated, ms. Default 100. */
  readonly tickMs?: number;
  /** Wall clock for event times. Default Date.now. */
  readonly now?: () => number;
}

export interface SimulatorSource extends EventSource {
  /** Offsets committed so far (next offset to read, per partition). */
  committed(): ReadonlyMap<number, number>;
}

const srcLog = log.child({ component: "simulator_source" });
const encoder = new TextEncoder();
/** Items per batch when the rate is 0 (as fast as possible). */
const MAX_BATCH = 5_000;

/**
 * Creates the simulator source.
 *
 * @example
 * const source = createSimulatorSource({ simulator: plan.source.simulator, partitions: 3 });
 * await source.start({ onBatch, onAssign: async () => {}, onRevoke: async () => {} });
 */
export function createSimulatorSource(opts: SimulatorSourceOptions): SimulatorSource {
  const sim = opts.simulator;
  const partitions = opts.partitions ?? 3;
  const tickMs = opts.tickMs ?? 100;
  if (!Number.isInteger(partitions) || partitions < 1) {
    throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  }
  const gen = createGenerator({
    seed: sim.seed,
    devices: sim.devices,
    antennas: sim.antennas,
    apps: sim.apps,
    lateShare: sim.lateShare,
    malformedShare: sim.malformedShare,
    maxLatenessMs: Math.max(1, sim.maxLatenessMs),
    maxPayloadBytes: opts.maxPayloadBytes,
    now: opts.now,
  });
  const all = Array.from({ length: partitions }, (_, p) => p);
  const nextOffset = new Map<number, number>(all.map((p) => [p, 0]));
  const committed = new Map<number, number>();
  const partitionOf = new Map<string, number>();

  let handlers: SourceHandlers | undefined;
  let paused = false;
  let stopping = false;
  let loopDone: Promise<void> = Promise.resolve();
  let wake: (() => void) | undefined;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(t);
        wake = undefined;
        resolve();
      };
    });

  function generate(n: number): Map<number, SourceMessage[]> {
    const byPartition = new Map<number, SourceMessage[]>();
    for (let i = 0; i < n; i++) {
      const item = gen.next();
      const key = encoder.encode(item.key);
      let p = partitionOf.get(item.key);
      if (p === undefined) {
        p = keyPartition(key, partitions);
        if (partitionOf.size < 1_000_000) partitionOf.set(item.key, p);
      }
      const offset = nextOffset.get(p)!;
      nextOffset.set(p, offset + 1);
      let list = byPartition.get(p);
      if (!list) byPartition.set(p, list = []);
      list.push({ partition: p, offset, key, value: item.value });
    }
    return byPartition;
  }

  async function deliver(partition: number, messages: SourceMessage[]): Promise<void> {
    const batch = {
      partition,
      messages,
      highWatermark: messages[messages.length - 1].offset + 1,
    };
    // Like a Kafka consumer that has not committed: the same batch comes again.
    while (!stopping) {
      try {
        await handlers!.onBatch(batch);
        return;
      } catch (error) {
        srcLog.error("onBatch failed; delivering the batch again in 1 s", { partition, error });
        await sleep(1_000);
      }
    }
  }

  async function loop(): Promise<void> {
    let last = performance.now();
    let budget = 0;
    while (!stopping) {
      const t = performance.now();
      if (paused) {
        last = t;
        await sleep(tickMs);
        continue;
      }
      let n: number;
      if (sim.rate > 0) {
        // At most one second of events at once: a slow consumer slows the antennas.
        budget = Math.min(budget + ((t - last) * sim.rate) / 1000, Math.max(1, sim.rate));
        n = Math.floor(budget);
        budget -= n;
      } else {
        n = MAX_BATCH;
      }
      last = t;
      if (n > 0) {
        for (const [p, messages] of generate(n)) await deliver(p, messages);
      }
      await sleep(sim.rate > 0 ? tickMs : 0);
    }
  }

  return {
    kind: "simulator",

    async start(h: SourceHandlers): Promise<void> {
      if (handlers) throw new Error("simulator source already started");
      handlers = h;
      const starts = await h.onAssign(all);
      if (starts) {
        for (const [p, offset] of starts) if (nextOffset.has(p)) nextOffset.set(p, offset);
      }
      srcLog.info("simulator source started", {
        partitions,
        rate: sim.rate,
        devices: sim.devices,
        antennas: sim.antennas,
      });
      loopDone = loop();
    },

    commit(offsets: ReadonlyMap<number, number>): Promise<void> {
      for (const [p, o] of offsets) if (nextOffset.has(p)) committed.set(p, o);
      return Promise.resolve();
    },

    pause(): void {
      paused = true;
    },

    resume(): void {
      paused = false;
      wake?.();
    },

    lag(): Promise<ReadonlyMap<number, number>> {
      return Promise.resolve(new Map(all.map((p) => [p, 0])));
    },

    endOffsets(): Promise<ReadonlyMap<number, number>> {
      return Promise.resolve(new Map(nextOffset));
    },

    committed: () => new Map(committed),

    async stop(): Promise<void> {
      if (stopping) return;
      stopping = true;
      wake?.();
      await loopDone;
      if (handlers) await handlers.onRevoke(all);
    },
  };
}
