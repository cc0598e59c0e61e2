/**
 * Reads back one header of every message a topic got since a moment: how an
 * at-least-once publisher finds out whether an attempt whose outcome it never
 * recorded (a crash between the broker's ack and its own bookkeeping) reached
 * the topic, so it does not publish the same message twice. A throwaway
 * consumer group seeks every partition to the first offset at or after the
 * moment (the broker's time index) and reads up to the end it saw on start.
 */
import { createClient } from "./_client.ts";

export interface ReadHeadersOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly topic: string;
  /** Messages with a timestamp at or after this (epoch ms). */
  readonly sinceMs: number;
  /** Header to collect (UTF-8). */
  readonly header: string;
  /** Give up after this long. Default 30,000 ms. */
  readonly timeoutMs?: number;
}

/**
 * The values of `header` on the messages of `topic` since `sinceMs`.
 *
 * @example
 * const ids = await readHeadersSince({ brokers, clientId: "alerts", topic: "quota.alerts",
 *   sinceMs: Date.now() - 60_000, header: "delivery-id" });
 */
export async function readHeadersSince(opts: ReadHeadersOptions): Promise<Set<string>> {
  const kafka = createClient(opts);
  const admin = kafka.admin();
  await admin.connect();
  const ranges = new Map<number, { from: number; to: number }>();
  try {
    const starts = await admin.fetchTopicOffsetsByTimestamp(opts.topic, opts.sinceMs);
    const ends = await admin.fetchTopicOffsets(opts.topic);
    for (const s of starts) {
      const to = Number(ends.find((e) => e.partition === s.partition)?.high ?? 0);
      const from = Number(s.offset);
      if (from < to) ranges.set(s.partition, { from, to });
    }
  } finally {
    await admin.disconnect();
  }
  const found = new Set<string>();
  if (ranges.size === 0) return found;

  const consumer = kafka.consumer({
    groupId: `${opts.clientId}-read-${crypto.randomUUID()}`,
    maxWaitTimeInMs: 100,
  });
  const remaining = new Set(ranges.keys());
  let finish!: () => void;
  const finished = new Promise<void>((r) => finish = r);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await consumer.connect();
    // A new group starts at the end: nothing arrives before the seeks below.
    await consumer.subscribe({ topic: opts.topic, fromBeginning: false });
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
      const mine = payload.memberAssignment[opts.topic] ?? [];
      for (const p of mine) {
        const r = ranges.get(p);
        if (r) consumer.seek({ topic: opts.topic, partition: p, offset: String(r.from) });
      }
    });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
        const r = ranges.get(batch.partition);
        for (const m of batch.messages) {
          const o = Number(m.offset);
          if (r && o >= r.from && o < r.to) {
            const v = m.headers?.[opts.header];
            if (v !== undefined) found.add(String(v));
            if (o >= r.to - 1) remaining.delete(batch.partition);
          }
          resolveOffset(m.offset);
        }
        await heartbeat();
        if (remaining.size === 0) finish();
      },
    });
    const timeoutMs = opts.timeoutMs ?? 30_000;
    await Promise.race([
      finished,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`reading ${opts.topic} back timed out after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
    return found;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => {});
  }
}
