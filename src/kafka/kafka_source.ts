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
import type { Admin, Consumer, EachBatchPayload, Kafka } from "kafkajs";
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

/** What the steps of one source share: its clients and its running state. */
interface State {
  readonly opts: KafkaSourceOptions;
  readonly topic: string;
  readonly group: string;
  readonly consumer: Consumer;
  readonly admin: Admin;
  adminConnected: boolean;
  handlers?: SourceHandlers;
  started: boolean;
  stopping: boolean;
  stopped: boolean;
  paused: boolean;
  /** The consumer is in a group generation (false after a crash, until it rejoins). */
  live: boolean;
  /** Partitions whose onAssign has completed and that were not revoked since. */
  readonly owned: Set<number>;
  /** Next offset to deliver per owned partition, once known. */
  readonly position: Map<number, number>;
  /** Assign/revoke work runs one at a time, in event order. */
  readonly lifecycle: Serial;
  /** Deliveries in progress, so a revoke waits for them before flushing. */
  inflight: number;
  idleWaiters: (() => void)[];
}

function createConsumer(kafka: Kafka, opts: KafkaSourceOptions): Consumer {
  // Throughput choices (see the module doc of mod.ts for measurements): big
  // fetches amortise kafkajs' per-request cost; minBytes + a short maxWait let
  // a live stream fill a batch while bounding the added latency to 100 ms.
  return kafka.consumer({
    groupId: opts.group,
    maxBytes: opts.maxBytes ?? 10 * 1024 * 1024,
    maxBytesPerPartition: opts.maxBytesPerPartition ?? 2 * 1024 * 1024,
    minBytes: opts.minBytes ?? 64 * 1024,
    maxWaitTimeInMs: opts.maxWaitTimeInMs ?? 100,
    sessionTimeout: opts.sessionTimeoutMs ?? 30_000,
    rebalanceTimeout: 60_000,
    heartbeatInterval: Math.min(3_000, Math.floor((opts.sessionTimeoutMs ?? 30_000) / 3)),
    allowAutoTopicCreation: false,
  });
}

/** Queues assign/revoke work; a failure is logged. */
function enqueue(st: State, what: string, task: () => Promise<void>): Promise<void> {
  return st.lifecycle.run(task).catch((error) => {
    srcLog.error(`${what} failed`, { topic: st.topic, group: st.group, error });
  });
}

function waitIdle(st: State): Promise<void> {
  return st.inflight === 0 ? Promise.resolve() : new Promise((r) => st.idleWaiters.push(r));
}

async function topicOffsets(st: State) {
  if (!st.adminConnected) {
    await st.admin.connect();
    st.adminConnected = true;
  }
  return await st.admin.fetchTopicOffsets(st.topic);
}

function seek(st: State, partition: number, offset: number): void {
  st.consumer.seek({ topic: st.topic, partition, offset: String(offset) });
}

function applyPause(st: State): void {
  try {
    if (st.paused) st.consumer.pause([{ topic: st.topic }]);
    else st.consumer.resume([{ topic: st.topic }]);
  } catch {
    // Not running yet (or restarting after a crash): reapplied on the next join.
  }
}

async function revoke(st: State, partitions: number[]): Promise<void> {
  if (partitions.length === 0 || !st.handlers) return;
  srcLog.info("partitions revoked", { topic: st.topic, group: st.group, partitions });
  try {
    await st.handlers.onRevoke(partitions);
  } finally {
    for (const p of partitions) {
      st.owned.delete(p);
      st.position.delete(p);
    }
  }
}

/** Revokes every owned partition once deliveries in progress are done. */
function revokeAll(st: State, what: string): Promise<void> {
  return enqueue(st, what, async () => {
    await waitIdle(st);
    await revoke(st, [...st.owned]);
  });
}

async function applyAssignment(st: State, assigned: number[]): Promise<void> {
  const { handlers, owned, position } = st;
  if (!handlers || st.stopping) return;
  const next = new Set(assigned);
  await waitIdle(st);
  await revoke(st, [...owned].filter((p) => !next.has(p)));
  for (const p of owned) {
    const pos = position.get(p);
    if (pos !== undefined) seek(st, p, pos);
  }
  const added = assigned.filter((p) => !owned.has(p));
  if (added.length > 0) {
    const starts = await handlers.onAssign(added);
    for (const p of added) {
      owned.add(p);
      const start = starts?.get(p);
      if (start !== undefined) {
        position.set(p, start);
        seek(st, p, start);
      }
    }
    srcLog.info("partitions assigned", {
      topic: st.topic,
      group: st.group,
      partitions: added,
      starts: starts ? Object.fromEntries(starts) : undefined,
    });
  }
  applyPause(st);
}

/** Follows the group: joins assign, crashes revoke, rebalances are counted. */
function watchGroup(st: State): void {
  const { consumer, topic, group } = st;
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    st.live = true;
    const assigned = (payload.memberAssignment[topic] ?? []).map(Number).sort((a, b) => a - b);
    void enqueue(st, "partition assignment", () => applyAssignment(st, assigned));
  });
  consumer.on(consumer.events.REBALANCING, () => {
    rebalances.inc({ topic });
    srcLog.info("consumer group rebalancing", { topic, group });
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    st.live = false;
    srcLog.error("Kafka consumer crashed", {
      topic,
      group,
      error: payload.error,
      restart: payload.restart,
    });
    // Having left the group, we no longer own anything: flush what we hold.
    void revokeAll(st, "revoke after crash");
    if (!payload.restart && !st.stopping) st.opts.onFatal?.(payload.error);
  });
}

/** Hands `messages` to onBatch, counted as in flight so a revoke waits for it. */
async function deliver(st: State, partition: number, messages: SourceMessage[], high: number) {
  st.inflight++;
  try {
    await st.handlers!.onBatch({ partition, messages, highWatermark: high });
  } finally {
    if (--st.inflight === 0) {
      const w = st.idleWaiters;
      st.idleWaiters = [];
      for (const r of w) r();
    }
  }
}

async function eachBatch(st: State, payload: EachBatchPayload): Promise<void> {
  const { batch, resolveOffset, heartbeat, isRunning, isStale } = payload;
  await st.lifecycle.idle();
  const partition = batch.partition;
  // Left unresolved: kafkajs fetches it again from the right place. A batch
  // fetched before a pause took effect (or before it was reapplied after a
  // rejoin, which resumes kept partitions) waits for the resume the same way.
  if (st.stopping || st.paused || !isRunning() || isStale() || !st.owned.has(partition)) return;
  const pos = st.position.get(partition) ?? -1;
  const messages: SourceMessage[] = [];
  for (const m of batch.messages) {
    const offset = Number(m.offset);
    // Defensive: never hand the speed layer an offset it has already seen.
    if (offset < pos) continue;
    messages.push({ partition, offset, key: m.key, value: m.value });
  }
  if (messages.length > 0 && st.handlers) {
    await deliver(st, partition, messages, Number(batch.highWatermark));
  }
  resolveOffset(batch.messages[batch.messages.length - 1].offset);
  st.position.set(partition, Number(batch.lastOffset()) + 1);
  try {
    await heartbeat();
  } catch (e) {
    // Still in the old generation: flush and commit before kafkajs rejoins.
    if (isRebalanceError(e)) await revokeAll(st, "revoke before rejoin");
    throw e;
  }
}

async function commit(st: State, offsets: ReadonlyMap<number, number>): Promise<void> {
  const { topic, group } = st;
  const parts: { topic: string; partition: number; offset: string }[] = [];
  for (const [partition, offset] of offsets) {
    if (st.owned.has(partition)) parts.push({ topic, partition, offset: String(offset) });
  }
  if (parts.length === 0) return;
  if (!st.live) {
    lostCommits.inc({ topic, reason: "not_in_group" });
    srcLog.warn("commit skipped: consumer not in the group", { topic, group, offsets: parts });
    return;
  }
  try {
    await st.consumer.commitOffsets(parts);
  } catch (e) {
    if (!isRebalanceError(e)) throw e;
    lostCommits.inc({ topic, reason: "rebalance" });
    srcLog.warn("commit lost to a rebalance; the next owner replays from the last commit", {
      topic,
      group,
      error: e,
    });
  }
}

async function lagOf(st: State): Promise<ReadonlyMap<number, number>> {
  const lag = new Map<number, number>();
  if (st.owned.size === 0) return lag;
  const ends = await topicOffsets(st);
  let committed: Map<number, number> | undefined;
  if ([...st.owned].some((p) => !st.position.has(p))) {
    const [res] = await st.admin.fetchOffsets({ groupId: st.group, topics: [st.topic] });
    committed = new Map(
      (res?.partitions ?? []).map((p) => [p.partition, Number(p.offset)] as const),
    );
  }
  for (const e of ends) {
    if (!st.owned.has(e.partition)) continue;
    const high = Number(e.high);
    let pos = st.position.get(e.partition) ?? committed?.get(e.partition) ?? -1;
    if (pos < 0) pos = st.opts.fromBeginning ? Number(e.low) : high;
    lag.set(e.partition, Math.max(0, high - pos));
  }
  return lag;
}

/**
 * Creates the Kafka source; nothing connects until `start`.
 *
 * @example
 * const source = createKafkaSource({ brokers: ["127.0.0.1:19092"], clientId: "speed",
 *   topic: "devices", group: "antenna-lambda", fromBeginning: true });
 * await source.start({ onBatch, onAssign, onRevoke });
 */
export function createKafkaSource(opts: KafkaSourceOptions): EventSource {
  const kafka = createClient(opts);
  const st: State = {
    opts,
    topic: opts.topic,
    group: opts.group,
    consumer: createConsumer(kafka, opts),
    admin: kafka.admin(),
    adminConnected: false,
    started: false,
    stopping: false,
    stopped: false,
    paused: false,
    live: false,
    owned: new Set(),
    position: new Map(),
    lifecycle: new Serial(),
    inflight: 0,
    idleWaiters: [],
  };
  watchGroup(st);

  return {
    kind: "kafka",

    async start(h: SourceHandlers): Promise<void> {
      if (st.started) throw new Error("Kafka source already started");
      st.started = true;
      st.handlers = h;
      await st.consumer.connect();
      await st.consumer.subscribe({ topic: st.topic, fromBeginning: opts.fromBeginning });
      await st.consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: Math.max(1, opts.partitionsConsumedConcurrently ?? 3),
        eachBatch: (payload) => eachBatch(st, payload),
      });
      await st.lifecycle.idle();
    },

    commit: (offsets) => commit(st, offsets),

    pause(): void {
      st.paused = true;
      applyPause(st);
    },

    resume(): void {
      st.paused = false;
      applyPause(st);
    },

    lag: () => lagOf(st),

    async endOffsets(): Promise<ReadonlyMap<number, number>> {
      return new Map((await topicOffsets(st)).map((e) => [e.partition, Number(e.high)]));
    },

    async stop(): Promise<void> {
      if (st.stopped) return;
      st.stopped = true;
      st.stopping = true;
      if (st.started) {
        st.paused = true;
        applyPause(st);
        await revokeAll(st, "revoke on stop");
      }
      await st.consumer.disconnect();
      if (st.adminConnected) await st.admin.disconnect();
    },
  };
}
