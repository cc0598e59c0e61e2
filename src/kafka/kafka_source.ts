/**
 * The Kafka EventSource: a kafkajs consumer in the configured group, offsets
 * committed only when the speed layer says its output is durable.
 *
 * kafkajs has no rebalance listener, so assignment changes are reconstructed
 * from its events and hooks (kafkajs 2.2.4 is frozen, so its internals are
 * stable enough to lean on):
 * - A rebalance is first seen as a REBALANCE_IN_PROGRESS error from a
 *   heartbeat. Our eachBatch heartbeats after every delivered batch; when that
 *   throws, the member still holds the old generation, so `onRevoke` runs for
 *   every owned partition (kafkajs' eager protocol gives them all up) while the
 *   speed layer can still commit. Then the error goes back to kafkajs, which
 *   rejoins.
 * - After every join (GROUP_JOIN, its member assignment) partitions no longer
 *   ours get a (late) `onRevoke`, new ones `onAssign`, whose start offsets are
 *   applied with `seek`. Partitions kept across the join are seeked to where
 *   delivery stopped: kafkajs itself would restart them from the committed
 *   offset and deliver twice what the speed layer already holds.
 * - eachBatch waits for pending assign/revoke work, then skips (without
 *   resolving, so it is fetched again) any batch of a partition we do not own,
 *   that a seek has made stale, or that arrives while the source is paused.
 * - `commit` only sends partitions still owned: the classic group protocol does
 *   not check ownership, and a late commit from a former owner would move the
 *   new owner's offset. A commit lost to a rebalance is logged, not thrown:
 *   delivery is at-least-once and the next owner replays from the last commit.
 */
import type { Consumer, EachBatchPayload } from "kafkajs";
import { Serial } from "../async/serial.ts";
import { log } from "../log.ts";
import { registry } from "../metrics.ts";
import { createClient, isRebalanceError } from "./_client.ts";
import type { EventSource, SourceHandlers, SourceMessage } from "../speed/mod.ts";

export interface KafkaSourceOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly topic: string;
  readonly group: string;
  /** Where a group without committed offsets starts: oldest (true) or newest. */
  readonly fromBeginning: boolean;
  /**
   * Batches of one fetch handled at once (one per partition). Default 3: the
   * default partition count, so one slow partition does not hold the others.
   */
  readonly partitionsConsumedConcurrently?: number;
  /** Bytes per fetch response. Default 10 MiB. */
  readonly maxBytes?: number;
  /** Bytes per partition per fetch. Default 2 MiB (kafkajs: 1 MiB). */
  readonly maxBytesPerPartition?: number;
  /** The broker holds a fetch until this many bytes are there... Default 64 KiB. */
  readonly minBytes?: number;
  /** ...or this long has passed, ms. Default 100. */
  readonly maxWaitTimeInMs?: number;
  /**
   * The broker drops this member after this long without a heartbeat, ms.
   * Default 30,000; heartbeats go every third of it, at most every 3 s.
   */
  readonly sessionTimeoutMs?: number;
  /** Called once if the consumer crashes and kafkajs will not restart it. */
  readonly onFatal?: (error: Error) => void;
}

const srcLog = log.child({ component: "kafka_source" });
const rebalances = registry.counter(
  "kafka_rebalances_total",
  "Consumer group rebalances seen by this process.",
);
const lostCommits = registry.counter(
  "kafka_commits_lost_total",
  "Offset commits dropped because the group was rebalancing or the consumer was down.",
);

/**
 * Creates the Kafka source; nothing connects until `start`.
 *
 * @example
 * const source = createKafkaSource({ brokers: ["127.0.0.1:19092"], clientId: "speed",
 *   topic: "devices", group: "antenna-lambda", fromBeginning: true });
 * await source.start({ onBatch, onAssign, onRevoke });
 */
export function createKafkaSource(opts: KafkaSourceOptions): EventSource {
  const { topic, group } = opts;
  const kafka = createClient(opts);
  // Throughput choices (see the module doc of mod.ts for measurements): big
  // fetches amortise kafkajs' per-request cost; minBytes + a short maxWait let
  // a live stream fill a batch while bounding the added latency to 100 ms.
  const consumer: Consumer = kafka.consumer({
    groupId: group,
    maxBytes: opts.maxBytes ?? 10 * 1024 * 1024,
    maxBytesPerPartition: opts.maxBytesPerPartition ?? 2 * 1024 * 1024,
    minBytes: opts.minBytes ?? 64 * 1024,
    maxWaitTimeInMs: opts.maxWaitTimeInMs ?? 100,
    sessionTimeout: opts.sessionTimeoutMs ?? 30_000,
    rebalanceTimeout: 60_000,
    heartbeatInterval: Math.min(3_000, Math.floor((opts.sessionTimeoutMs ?? 30_000) / 3)),
    allowAutoTopicCreation: false,
  });
  const admin = kafka.admin();
  let adminConnected = false;

  let handlers: SourceHandlers | undefined;
  let started = false;
  let stopping = false;
  let stopped = false;
  let paused = false;
  /** The consumer is in a group generation (false after a crash, until it rejoins). */
  let live = false;
  /** Partitions whose onAssign has completed and that were not revoked since. */
  const owned = new Set<number>();
  /** Next offset to deliver per owned partition, once known. */
  const position = new Map<number, number>();

  // Assign/revoke work runs one at a time, in event order; a failure is logged.
  const lifecycle = new Serial();
  const enqueue = (what: string, task: () => Promise<void>): Promise<void> =>
    lifecycle.run(task).catch((error) => {
      srcLog.error(`${what} failed`, { topic, group, error });
    });

  // Deliveries in progress, so a revoke waits for them before flushing.
  let inflight = 0;
  let idleWaiters: (() => void)[] = [];
  const waitIdle = (): Promise<void> =>
    inflight === 0 ? Promise.resolve() : new Promise((r) => idleWaiters.push(r));

  async function topicOffsets() {
    if (!adminConnected) {
      await admin.connect();
      adminConnected = true;
    }
    return await admin.fetchTopicOffsets(topic);
  }

  function seek(partition: number, offset: number): void {
    consumer.seek({ topic, partition, offset: String(offset) });
  }

  function applyPause(): void {
    try {
      if (paused) consumer.pause([{ topic }]);
      else consumer.resume([{ topic }]);
    } catch {
      // Not running yet (or restarting after a crash): reapplied on the next join.
    }
  }

  async function revoke(partitions: number[]): Promise<void> {
    if (partitions.length === 0 || !handlers) return;
    srcLog.info("partitions revoked", { topic, group, partitions });
    try {
      await handlers.onRevoke(partitions);
    } finally {
      for (const p of partitions) {
        owned.delete(p);
        position.delete(p);
      }
    }
  }

  async function applyAssignment(assigned: number[]): Promise<void> {
    if (!handlers || stopping) return;
    const next = new Set(assigned);
    await waitIdle();
    await revoke([...owned].filter((p) => !next.has(p)));
    for (const p of owned) {
      const pos = position.get(p);
      if (pos !== undefined) seek(p, pos);
    }
    const added = assigned.filter((p) => !owned.has(p));
    if (added.length > 0) {
      const starts = await handlers.onAssign(added);
      for (const p of added) {
        owned.add(p);
        const start = starts?.get(p);
        if (start !== undefined) {
          position.set(p, start);
          seek(p, start);
        }
      }
      srcLog.info("partitions assigned", {
        topic,
        group,
        partitions: added,
        starts: starts ? Object.fromEntries(starts) : undefined,
      });
    }
    applyPause();
  }

  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    live = true;
    const assigned = (payload.memberAssignment[topic] ?? []).map(Number).sort((a, b) => a - b);
    void enqueue("partition assignment", () => applyAssignment(assigned));
  });
  consumer.on(consumer.events.REBALANCING, () => {
    rebalances.inc({ topic });
    srcLog.info("consumer group rebalancing", { topic, group });
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    live = false;
    srcLog.error("Kafka consumer crashed", {
      topic,
      group,
      error: payload.error,
      restart: payload.restart,
    });
    // Having left the group, we no longer own anything: flush what we hold.
    void enqueue("revoke after crash", async () => {
      await waitIdle();
      await revoke([...owned]);
    });
    if (!payload.restart && !stopping) opts.onFatal?.(payload.error);
  });

  async function eachBatch(
    { batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload,
  ): Promise<void> {
    await lifecycle.idle();
    const partition = batch.partition;
    // Left unresolved: kafkajs fetches it again from the right place. A batch
    // fetched before a pause took effect (or before it was reapplied after a
    // rejoin, which resumes kept partitions) waits for the resume the same way.
    if (stopping || paused || !isRunning() || isStale() || !owned.has(partition)) return;
    const pos = position.get(partition) ?? -1;
    const messages: SourceMessage[] = [];
    for (const m of batch.messages) {
      const offset = Number(m.offset);
      // Defensive: never hand the speed layer an offset it has already seen.
      if (offset < pos) continue;
      messages.push({ partition, offset, key: m.key, value: m.value });
    }
    if (messages.length > 0 && handlers) {
      inflight++;
      try {
        await handlers.onBatch({
          partition,
          messages,
          highWatermark: Number(batch.highWatermark),
        });
      } finally {
        if (--inflight === 0) {
          const w = idleWaiters;
          idleWaiters = [];
          for (const r of w) r();
        }
      }
    }
    resolveOffset(batch.messages[batch.messages.length - 1].offset);
    position.set(partition, Number(batch.lastOffset()) + 1);
    try {
      await heartbeat();
    } catch (e) {
      if (isRebalanceError(e)) {
        // Still in the old generation: flush and commit before kafkajs rejoins.
        await enqueue("revoke before rejoin", async () => {
          await waitIdle();
          await revoke([...owned]);
        });
      }
      throw e;
    }
  }

  return {
    kind: "kafka",

    async start(h: SourceHandlers): Promise<void> {
      if (started) throw new Error("Kafka source already started");
      started = true;
      handlers = h;
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: opts.fromBeginning });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: Math.max(1, opts.partitionsConsumedConcurrently ?? 3),
        eachBatch,
      });
      await lifecycle.idle();
    },

    async commit(offsets: ReadonlyMap<number, number>): Promise<void> {
      const parts: { topic: string; partition: number; offset: string }[] = [];
      for (const [partition, offset] of offsets) {
        if (owned.has(partition)) parts.push({ topic, partition, offset: String(offset) });
      }
      if (parts.length === 0) return;
      if (!live) {
        lostCommits.inc({ topic, reason: "not_in_group" });
        srcLog.warn("commit skipped: consumer not in the group", { topic, group, offsets: parts });
        return;
      }
      try {
        await consumer.commitOffsets(parts);
      } catch (e) {
        if (!isRebalanceError(e)) throw e;
        lostCommits.inc({ topic, reason: "rebalance" });
        srcLog.warn("commit lost to a rebalance; the next owner replays from the last commit", {
          topic,
          group,
          error: e,
        });
      }
    },

    pause(): void {
      paused = true;
      applyPause();
    },

    resume(): void {
      paused = false;
      applyPause();
    },

    async lag(): Promise<ReadonlyMap<number, number>> {
      const lag = new Map<number, number>();
      if (owned.size === 0) return lag;
      const ends = await topicOffsets();
      let committed: Map<number, number> | undefined;
      if ([...owned].some((p) => !position.has(p))) {
        const [res] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
        committed = new Map(
          (res?.partitions ?? []).map((p) => [p.partition, Number(p.offset)] as const),
        );
      }
      for (const e of ends) {
        if (!owned.has(e.partition)) continue;
        const high = Number(e.high);
        let pos = position.get(e.partition) ?? committed?.get(e.partition) ?? -1;
        if (pos < 0) pos = opts.fromBeginning ? Number(e.low) : high;
        lag.set(e.partition, Math.max(0, high - pos));
      }
      return lag;
    },

    async endOffsets(): Promise<ReadonlyMap<number, number>> {
      return new Map((await topicOffsets()).map((e) => [e.partition, Number(e.high)]));
    },

    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      stopping = true;
      if (started) {
        paused = true;
        applyPause();
        await enqueue("revoke on stop", async () => {
          await waitIdle();
          await revoke([...owned]);
        });
      }
      await consumer.disconnect();
      if (adminConnected) await admin.disconnect();
    },
  };
}
