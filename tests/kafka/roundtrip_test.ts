/**
 * Simulator to real Kafka and back: `simulate` (its CLI main) produces a
 * deterministic run, createKafkaSource reads it with a fresh group, and the
 * test regenerates the same run to compare message by message.
 */
import assert from "node:assert/strict";
import { freshTopic, kafkaBrokers, uniqueName } from "../_support/services.ts";
import { main } from "../../src/cli/simulate.ts";
import { createGenerator, type GeneratedItem } from "../../src/simulator/generator.ts";
import { keyPartition } from "../../src/simulator/murmur2.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import type { SourceMessage } from "../../src/speed/mod.ts";
import { loadPlan } from "../../src/config/mod.ts";

const decoder = new TextDecoder();
const opts = { sanitizeOps: false, sanitizeResources: false };

Deno.test(
  "simulate → Kafka → createKafkaSource: every message, keyed by device, in order per device",
  opts,
  async () => {
    const brokers = kafkaBrokers();
    const topic = await freshTopic("sim_roundtrip", 3);
    const N = 3_000;
    const start = "2026-11-28T10:00Z";
    const code = await main([
      "--brokers",
      brokers.join(","),
      "--topic",
      topic,
      "--start",
      start,
      "--rate",
      "100",
      "--count",
      String(N),
      "--seed",
      "11",
      "--late-share",
      "0.05",
      "--malformed-share",
      "0.02",
      "--quiet",
    ]);
    assert.equal(code, 0);

    // The same run, regenerated with the plan defaults main() used.
    const plan = await loadPlan();
    const s = plan.source.simulator;
    const gen = createGenerator({
      seed: 11,
      devices: s.devices,
      antennas: s.antennas,
      apps: s.apps,
      startMs: Date.parse(start),
      rate: 100,
      lateShare: 0.05,
      maxLatenessMs: s.maxLatenessMs,
      malformedShare: 0.02,
      maxPayloadBytes: plan.schema.maxPayloadBytes,
    });
    const expectedByKey = new Map<string, GeneratedItem[]>();
    for (let i = 0; i < N; i++) {
      const item = gen.next();
      const list = expectedByKey.get(item.key) ?? [];
      list.push(item);
      expectedByKey.set(item.key, list);
    }

    const got: SourceMessage[] = [];
    const done = Promise.withResolvers<void>();
    const source = createKafkaSource({
      brokers,
      clientId: "roundtrip-test",
      topic,
      group: uniqueName("g"),
      fromBeginning: true,
    });
    await source.start({
      onBatch(b) {
        got.push(...b.messages);
        if (got.length >= N) done.resolve();
        return Promise.resolve();
      },
      onAssign: () => Promise.resolve(),
      onRevoke: () => Promise.resolve(),
    });
    const timer = setTimeout(
      () => done.reject(new Error(`only ${got.length} of ${N} consumed`)),
      30_000,
    );
    try {
      await done.promise;
    } finally {
      clearTimeout(timer);
      await source.stop();
    }

    assert.equal(got.length, N);
    const gotByKey = new Map<string, SourceMessage[]>();
    for (const m of got) {
      const key = decoder.decode(m.key!);
      // Kafka's own keyed partitioning (Java-compatible murmur2).
      assert.equal(m.partition, keyPartition(m.key!, 3));
      const list = gotByKey.get(key) ?? [];
      list.push(m);
      gotByKey.set(key, list);
    }
    assert.deepEqual([...gotByKey.keys()].sort(), [...expectedByKey.keys()].sort());
    let valid = 0;
    for (const [key, expected] of expectedByKey) {
      const actual = gotByKey.get(key)!;
      assert.equal(actual.length, expected.length, key);
      assert.equal(new Set(actual.map((m) => m.partition)).size, 1, "one partition per device");
      expected.forEach((item, i) => {
        assert.deepEqual(new Uint8Array(actual[i].value!), item.value);
        if (item.event) {
          valid++;
          const o = JSON.parse(decoder.decode(actual[i].value!));
          assert.deepEqual(o, item.event);
          assert.equal(o.id, key);
        }
      });
    }
    assert.ok(valid > N * 0.95 && valid < N, `valid ${valid}`);
  },
);
