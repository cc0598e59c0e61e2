/**
 * createKafkaSource against the real broker: commits and restarts in the same
 * group (at-least-once resume), start offsets from onAssign, lag, and two
 * instances sharing a group through a rebalance.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { freshTopic, kafkaBrokers, uniqueName } from "../_support/services.ts";
import { eventSourceCases } from "../_support/event_source_cases.ts";
import { createKafkaSource, createProducer, type OutgoingMessage } from "../../src/kafka/mod.ts";
import type { EventSource, SourceMessage } from "../../src/speed/mod.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };

async function produce(topic: string, n: number, partition?: number): Promise<void> {
  const producer = await createProducer({ brokers: kafkaBrokers(), clientId: "source-test" });
  try {
    const messages: OutgoingMessage[] = Array.from({ length: n }, (_, i) => ({
      key: `key-${i % 17}`,
      value: JSON.stringify({ i }),
      partition,
    }));
    await producer.send(topic, messages);
  } finally {
    await producer.close();
  }
}

interface Run {
  source: EventSource;
  got: SourceMessage[];
  assigned: number[][];
  revoked: number[][];
  /** Assigns and revokes in the order they happened. */
  events: ["assign" | "revoke", number[]][];
  /** Resolves once `n` messages arrived in total. */
  waitFor(n: number, timeoutMs?: number): Promise<void>;
}

async function run(
  topic: string,
  group: string,
  hooks: {
    starts?: (p: readonly number[]) => Map<number, number> | undefined;
    commitEachBatch?: boolean;
  } = {},
): Promise<Run> {
  const got: SourceMessage[] = [];
  const assigned: number[][] = [];
  const revoked: number[][] = [];
  const events: ["assign" | "revoke", number[]][] = [];
  let waiters: { n: number; resolve: () => void }[] = [];
  const source = createKafkaSource({
    brokers: kafkaBrokers(),
    clientId: "source-test",
    topic,
    group,
    fromBeginning: true,
  });
  await source.start({
    async onBatch(b) {
      got.push(...b.messages);
      if (hooks.commitEachBatch) {
        await source.commit(new Map([[b.partition, b.messages.at(-1)!.offset + 1]]));
      }
      waiters = waiters.filter((w) => got.length < w.n || (w.resolve(), false));
    },
    onAssign(p) {
      assigned.push([...p]);
      events.push(["assign", [...p]]);
      return Promise.resolve(hooks.starts?.(p));
    },
    onRevoke(p) {
      revoked.push([...p]);
      events.push(["revoke", [...p]]);
      return Promise.resolve();
    },
  });
  return {
    source,
    got,
    assigned,
    revoked,
    events,
    waitFor(n, timeoutMs = 30_000) {
      if (got.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`only ${got.length} of ${n} messages after ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          n,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
    },
  };
}

function byPartition(messages: readonly SourceMessage[]): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const m of messages) {
    const list = out.get(m.partition) ?? [];
    list.push(m.offset);
    out.set(m.partition, list);
  }
  return out;
}

Deno.test(
  "createKafkaSource() resumes a restarted group from the committed offsets",
  opts,
  async () => {
    const topic = await freshTopic("src_resume", 3);
    await produce(topic, 300);
    const group = uniqueName("g");

    const a = await run(topic, group);
    await a.waitFor(300);
    assert.deepEqual(a.assigned, [[0, 1, 2]]);
    const offsetsA = byPartition(a.got);
    // Commit the middle of each partition, as if only that much were durable.
    const committed = new Map<number, number>();
    for (const [p, offs] of offsetsA) {
      assert.deepEqual(offs, offs.map((_, i) => i), "consecutive offsets from 0");
      committed.set(p, Math.floor(offs.length / 2));
    }
    await a.source.commit(committed);
    await a.source.stop();
    assert.deepEqual(a.revoked, [[0, 1, 2]]);

    const b = await run(topic, group);
    const expected = [...committed].reduce((s, [p, c]) => s + offsetsA.get(p)!.length - c, 0);
    await b.waitFor(expected);
    await delay(300);
    await b.source.stop();
    assert.equal(b.got.length, expected, "nothing before the commit is delivered again");
    for (const [p, offs] of byPartition(b.got)) {
      assert.equal(offs[0], committed.get(p), `partition ${p} resumes at its commit`);
    }
  },
);

Deno.test("createKafkaSource() starts where onAssign says and reports lag", opts, async () => {
  const topic = await freshTopic("src_seek", 3);
  await produce(topic, 300);
  const perPartition = new Map<number, number>();
  {
    const probe = await run(topic, uniqueName("g"));
    await probe.waitFor(300);
    for (const [p, offs] of byPartition(probe.got)) perPartition.set(p, offs.length);
    await probe.source.stop();
  }

  const r = await run(topic, uniqueName("g"), {
    starts: (ps) => new Map(ps.map((p) => [p, 10])),
  });
  const expected = [...perPartition.values()].reduce((s, n) => s + Math.max(0, n - 10), 0);
  await r.waitFor(expected);
  for (const [p, offs] of byPartition(r.got)) assert.equal(offs[0], 10, `partition ${p}`);

  assert.deepEqual(await r.source.lag(), new Map([[0, 0], [1, 0], [2, 0]]));
  r.source.pause();
  await delay(300);
  const before = r.got.length;
  await produce(topic, 5, 1);
  await delay(500);
  assert.equal(r.got.length, before, "paused: nothing delivered");
  assert.deepEqual(await r.source.lag(), new Map([[0, 0], [1, 5], [2, 0]]));
  r.source.resume();
  await r.waitFor(before + 5);
  await r.source.stop();
});

Deno.test(
  "two createKafkaSource() instances share a group: disjoint partitions, everything committed",
  opts,
  async () => {
    const topic = await freshTopic("src_group", 3);
    await produce(topic, 600);
    const group = uniqueName("g");

    const x = await run(topic, group, { commitEachBatch: true });
    await x.waitFor(600);
    await produce(topic, 600);
    const y = await run(topic, group, { commitEachBatch: true });
    // x learns about the rebalance at its next heartbeat and gives partitions up.
    const deadline = Date.now() + 30_000;
    while (x.revoked.length === 0 && Date.now() < deadline) {
      await delay(200);
    }
    assert.ok(x.revoked.length > 0, "x had partitions revoked");
    await produce(topic, 600);
    const total = () => x.got.length + y.got.length;
    while (total() < 1800 && Date.now() < deadline) await delay(200);
    assert.ok(total() >= 1800, `delivered ${total()} of 1800`);

    // What each instance owns now, from its assign/revoke history in order.
    const owned = (r: Run) => {
      const set = new Set<number>();
      for (const [kind, ps] of r.events) {
        for (const p of ps) kind === "assign" ? set.add(p) : set.delete(p);
      }
      return set;
    };
    const ox = owned(x), oy = owned(y);
    assert.ok(oy.size >= 1, "y got partitions");
    assert.deepEqual([...ox].filter((p) => oy.has(p)), [], "no partition owned twice");
    assert.deepEqual([...ox, ...oy].sort(), [0, 1, 2]);

    await x.source.stop();
    await y.source.stop();

    // Every offset was delivered at least once, and the group committed to the end.
    const all = byPartition([...x.got, ...y.got]);
    let sum = 0;
    for (const [p, offs] of all) {
      const distinct = new Set(offs);
      sum += distinct.size;
      for (let o = 0; o < distinct.size; o++) {
        assert.ok(
          distinct.has(o),
          `partition ${p} offset ${o}`,
        );
      }
    }
    assert.equal(sum, 1800);
    const { Kafka, logLevel } = await import("kafkajs");
    const admin = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    try {
      const [res] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      for (const { partition, offset } of res.partitions) {
        assert.equal(Number(offset), new Set(all.get(partition)).size, `committed ${partition}`);
      }
    } finally {
      await admin.disconnect();
    }
  },
);

eventSourceCases("createKafkaSource()", async () => {
  const topic = await freshTopic("source-contract", 3);
  let filled = 0;
  return {
    partitions: 3,
    open: () =>
      Promise.resolve(createKafkaSource({
        brokers: kafkaBrokers(),
        clientId: "source-contract",
        topic,
        group: uniqueName("source-contract"),
        fromBeginning: true,
      })),
    async fill(n) {
      for (let p = 0; p < 3 && filled < n; p++) await produce(topic, n - filled, p);
      filled = Math.max(filled, n);
    },
    close: () => Promise.resolve(),
  };
});
