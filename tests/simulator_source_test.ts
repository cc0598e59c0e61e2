import assert from "node:assert/strict";
import { createSimulatorSource } from "../src/simulator/simulator_source.ts";
import { keyPartition } from "../src/simulator/murmur2.ts";
import type { SimulatorPlan } from "../src/config/plan.ts";
import type { SourceBatch } from "../src/kafka/source.ts";
import { DEFAULT_APPS } from "../src/simulator/ids.ts";

const PLAN: SimulatorPlan = {
  antennas: 5,
  devices: 20,
  apps: DEFAULT_APPS,
  rate: 0,
  seed: 42,
  lateShare: 0.05,
  malformedShare: 0.01,
  maxLatenessMs: 30_000,
};
const decoder = new TextDecoder();

async function collect(
  opts: { rate?: number; starts?: Map<number, number>; until: number },
) {
  const batches: SourceBatch[] = [];
  const revoked: number[][] = [];
  const assigned: number[][] = [];
  let total = 0;
  const enough = Promise.withResolvers<void>();
  const source = createSimulatorSource({
    simulator: { ...PLAN, rate: opts.rate ?? 0 },
    partitions: 3,
    tickMs: 20,
  });
  await source.start({
    onBatch(b) {
      batches.push(b);
      total += b.messages.length;
      if (total >= opts.until) enough.resolve();
      return Promise.resolve();
    },
    onAssign(p) {
      assigned.push([...p]);
      return Promise.resolve(opts.starts);
    },
    onRevoke(p) {
      revoked.push([...p]);
      return Promise.resolve();
    },
  });
  await enough.promise;
  await source.stop();
  return { batches, revoked, assigned, source };
}

Deno.test("createSimulatorSource() delivers consecutive offsets per partition, keyed like Kafka", async () => {
  const { batches, assigned, revoked } = await collect({ until: 12_000 });
  assert.deepEqual(assigned, [[0, 1, 2]]);
  assert.deepEqual(revoked, [[0, 1, 2]]);
  const next = new Map<number, number>();
  const partitionOfKey = new Map<string, number>();
  for (const b of batches) {
    assert.ok(b.messages.length > 0);
    assert.equal(b.highWatermark, b.messages.at(-1)!.offset + 1);
    for (const m of b.messages) {
      assert.equal(m.partition, b.partition);
      assert.equal(m.offset, next.get(b.partition) ?? 0);
      next.set(b.partition, m.offset + 1);
      const key = decoder.decode(m.key!);
      assert.equal(m.partition, keyPartition(m.key!, 3));
      assert.equal(partitionOfKey.get(key) ?? m.partition, m.partition);
      partitionOfKey.set(key, m.partition);
    }
  }
  assert.equal(next.size, 3, "all partitions get events");
});

Deno.test("createSimulatorSource() continues numbering from the offsets onAssign returns", async () => {
  const starts = new Map([[0, 1000], [1, 5], [2, 77]]);
  const { batches } = await collect({ starts, until: 12_000 });
  for (const p of [0, 1, 2]) {
    const first = batches.find((b) => b.partition === p)!;
    assert.equal(first.messages[0].offset, starts.get(p));
  }
});

Deno.test("createSimulatorSource() paces live generation at the plan's rate", async () => {
  const t0 = performance.now();
  const { batches } = await collect({ rate: 2_000, until: 1_000 });
  const elapsed = performance.now() - t0;
  // 1 000 events at 2 000/s take about half a second, not a burst.
  assert.ok(elapsed >= 350, `took ${elapsed} ms`);
  const n = batches.reduce((s, b) => s + b.messages.length, 0);
  assert.ok(n >= 1_000);
});

Deno.test("createSimulatorSource() records commits, pauses and reports zero lag", async () => {
  const source = createSimulatorSource({ simulator: PLAN, partitions: 2, tickMs: 10 });
  let delivered = 0;
  await source.start({
    onBatch: (b) => {
      delivered += b.messages.length;
      return Promise.resolve();
    },
    onAssign: () => Promise.resolve(),
    onRevoke: () => Promise.resolve(),
  });
  await new Promise((r) => setTimeout(r, 30));
  source.pause();
  await new Promise((r) => setTimeout(r, 30));
  const atPause = delivered;
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(delivered, atPause, "nothing delivered while paused");
  source.resume();
  await new Promise((r) => setTimeout(r, 30));
  assert.ok(delivered > atPause, "delivery resumes");
  await source.commit(new Map([[0, 10], [1, 20], [7, 1]]));
  assert.deepEqual(source.committed(), new Map([[0, 10], [1, 20]]));
  assert.deepEqual(await source.lag(), new Map([[0, 0], [1, 0]]));
  await source.stop();
  assert.equal(source.kind, "simulator");
});
