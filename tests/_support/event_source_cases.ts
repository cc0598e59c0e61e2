/**
 * The one contract suite of the event-source port (src/speed/source.ts), run
 * against every implementation: tests/kafka/source_test.ts (a real topic) and
 * tests/simulator/source_test.ts (the in-process simulator). What the speed
 * layer relies on, whichever source it reads: consecutive offsets per
 * partition in order, one batch at a time per partition, starts taken from
 * onAssign, the same message for an offset read again by a new instance,
 * pause and resume, end offsets of every partition, lag of the assigned ones,
 * and the assigned partitions revoked on stop. The model: Hono's
 * `src/router/common.case.test.ts`.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import type { EventSource, SourceBatch } from "../../src/speed/mod.ts";

/** One implementation under test, over one log (a topic, a timeline). */
export interface EventSourceSubject {
  /** Partitions of the log. */
  readonly partitions: number;
  /** A new instance over the same log (a restart of the reader). */
  open(): Promise<EventSource>;
  /** Makes at least `n` messages per partition readable (Kafka produces them). */
  fill(n: number): Promise<void>;
  /** Releases what `setup` made. */
  close(): Promise<void>;
}

/** What a consumer saw. */
interface Seen {
  readonly batches: SourceBatch[];
  /** "key value" by "partition:offset". */
  readonly messages: Map<string, string>;
  readonly assigned: number[][];
  readonly revoked: number[][];
  /** Two batches of one partition were in onBatch at once. */
  overlapped: boolean;
}

const decoder = new TextDecoder();
const text = (b: Uint8Array | null) => (b === null ? "" : decoder.decode(b));

async function consume(
  source: EventSource,
  opts: { starts?: Map<number, number>; holdMs?: number } = {},
): Promise<Seen> {
  const seen: Seen = {
    batches: [],
    messages: new Map(),
    assigned: [],
    revoked: [],
    overlapped: false,
  };
  const busy = new Set<number>();
  await source.start({
    async onBatch(b) {
      if (busy.has(b.partition)) seen.overlapped = true;
      busy.add(b.partition);
      if (opts.holdMs) await delay(opts.holdMs);
      seen.batches.push(b);
      for (const m of b.messages) {
        seen.messages.set(`${m.partition}:${m.offset}`, `${text(m.key)} ${text(m.value)}`);
      }
      busy.delete(b.partition);
    },
    onAssign(p) {
      seen.assigned.push([...p]);
      return Promise.resolve(opts.starts);
    },
    onRevoke(p) {
      seen.revoked.push([...p]);
      return Promise.resolve();
    },
  });
  return seen;
}

/** Offsets delivered per partition, in delivery order. */
function offsets(seen: Seen, partition: number): number[] {
  return seen.batches.filter((b) => b.partition === partition)
    .flatMap((b) => b.messages.map((m) => m.offset));
}

async function until(what: string, ok: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

const all = (n: number) => Array.from({ length: n }, (_, p) => p);
const opts = { sanitizeOps: false, sanitizeResources: false };

/**
 * Registers the contract's cases for one implementation.
 *
 * @example
 * eventSourceCases("createKafkaSource()", async () => ({ partitions: 3, open, fill, close }));
 */
export function eventSourceCases(name: string, setup: () => Promise<EventSourceSubject>): void {
  const N = 200;
  const test = (what: string, fn: (s: EventSourceSubject) => Promise<void>) =>
    Deno.test(`${name} (event-source contract) ${what}`, opts, async () => {
      const subject = await setup();
      try {
        await fn(subject);
      } finally {
        await subject.close();
      }
    });

  test("delivers consecutive offsets per partition from onAssign's starts, in order, one batch at a time", async (s) => {
    await s.fill(N);
    const starts = new Map(all(s.partitions).map((p) => [p, p * 7]));
    const source = await s.open();
    const seen = await consume(source, { starts, holdMs: 2 });
    const enough = () => all(s.partitions).every((p) => offsets(seen, p).length >= N / 2);
    await until(`${N / 2} messages on every partition`, enough);
    await source.stop();
    assert.deepEqual(seen.assigned.flat().sort(), all(s.partitions));
    for (const p of all(s.partitions)) {
      const got = offsets(seen, p);
      assert.deepEqual(got, got.map((_, i) => starts.get(p)! + i), `partition ${p}`);
    }
    assert.ok(seen.batches.every((b) => b.messages.every((m) => m.partition === b.partition)));
    assert.equal(seen.overlapped, false, "a partition's next batch waits for onBatch");
    assert.deepEqual(
      seen.revoked.flat().sort(),
      all(s.partitions),
      "stop revokes what was assigned",
    );
  });

  test("gives a new instance the same message for an offset read again", async (s) => {
    await s.fill(N);
    const first = await s.open();
    const a = await consume(first);
    await until(
      "a first read",
      () => all(s.partitions).every((p) => offsets(a, p).length >= N / 2),
    );
    await first.stop();
    const again = await s.open();
    const b = await consume(again, { starts: new Map(all(s.partitions).map((p) => [p, 10])) });
    await until(
      "a second read",
      () => all(s.partitions).every((p) => offsets(b, p).length >= N / 4),
    );
    await again.stop();
    let compared = 0;
    for (const [at, message] of b.messages) {
      if (!a.messages.has(at)) continue;
      assert.equal(message, a.messages.get(at), at);
      compared++;
    }
    assert.ok(compared >= (s.partitions * N) / 4, `compared ${compared}`);
  });

  test("delivers nothing while paused and again once resumed", async (s) => {
    await s.fill(N);
    const source = await s.open();
    const seen = await consume(source, { holdMs: 5 });
    await until("a first batch", () => seen.batches.length > 0);
    source.pause();
    await delay(300); // a batch already fetched may still arrive
    const atPause = seen.batches.length;
    await s.fill(2 * N); // more to read, which must wait
    await delay(500);
    assert.equal(seen.batches.length, atPause, "nothing delivered while paused");
    source.resume();
    await until("a batch after resume", () => seen.batches.length > atPause);
    await source.stop();
  });

  test("reports the end offset of every partition and the lag of the assigned ones", async (s) => {
    await s.fill(N);
    const source = await s.open();
    const seen = await consume(source);
    await until(
      "every partition",
      () => all(s.partitions).every((p) => offsets(seen, p).length > 0),
    );
    const ends = await source.endOffsets();
    assert.deepEqual([...ends.keys()].sort(), all(s.partitions));
    for (const p of all(s.partitions)) {
      assert.ok(
        ends.get(p)! >= offsets(seen, p).at(-1)! + 1,
        `partition ${p} ends after what it delivered`,
      );
    }
    const lag = await source.lag();
    for (const [p, n] of lag) {
      assert.ok(all(s.partitions).includes(p) && n >= 0, `lag ${p}: ${n}`);
    }
    await source.stop();
  });
}
