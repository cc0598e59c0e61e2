/**
 * A batch that waits on a slow sink must not cost the consumer its place in
 * the group: kafkajs sends heartbeats only between batches, so a batch held
 * past the session timeout would get the member evicted and the partitions
 * rebalanced. The speed layer heartbeats while it holds a batch. Here the lake
 * reports a backlog (as when the store is down) for over twice the session
 * timeout: no rebalance happens, and the totals stay exact.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import { LakeWriter, openStore } from "../../src/lake/mod.ts";
import { registry } from "../../src/metrics.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import { type SpeedLake, startSpeedLayer } from "../../src/speed/mod.ts";
import {
  produce,
  readBytes,
  referenceTotals,
  sorted,
  speedScene,
  validEvents,
  waitCommitted,
  waitFor,
} from "../_support/speed_fixture.ts";

/** The broker's smallest allowed session timeout (group.min.session.timeout.ms). */
const SESSION_TIMEOUT_MS = 6_000;

Deno.test({
  name: "speed layer: a batch held by the lake for 2x the session timeout keeps its partitions",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const scene = await speedScene("speed-heartbeat", 1, { idleMs: 1_000, maxAgeMs: 500 });
    const { topic, plan } = scene;
    const gen = createGenerator({ seed: 11, devices: 50, startMs: Date.now() - 3_600_000 });
    const first = Array.from({ length: 2_000 }, () => gen.next());
    const second = Array.from({ length: 500 }, () => gen.next());
    const db = await openDb({ url: scene.dbUrl });
    const store = openStore(plan.lake);
    const writer = new LakeWriter({ store, roll: plan.lake.roll });
    // The real writer, except that while `stalled` it reports a backlog far
    // beyond the layer's pause limit.
    let stalled = false;
    const lake: SpeedLake = {
      append: (e) => writer.append(e),
      advance: (p, n) => writer.advance(p, n),
      tick: () => writer.tick(),
      flush: (p) => writer.flush(p),
      drain: (p) => writer.drain(p),
      pendingRows: (p) => (stalled ? 1e12 : writer.pendingRows(p)),
      durableOffset: (p) => writer.durableOffset(p),
      recover: (p, o) => writer.recover(p, o),
      markCommitted: (p, o) => writer.markCommitted(p, o),
      release: (p) => writer.release(p),
    };
    const source = createKafkaSource({
      brokers: plan.source.kafka.brokers,
      clientId: "speed-heartbeat",
      topic,
      group: plan.source.kafka.group,
      fromBeginning: true,
      sessionTimeoutMs: SESSION_TIMEOUT_MS,
    });
    const rebalances = registry.counter("kafka_rebalances_total", "");
    try {
      await migrate(db);
      await produce(topic, first.map((i) => ({ key: i.key, value: i.value })));
      const layer = await startSpeedLayer({ plan, db, store, source, lake });
      try {
        await waitCommitted(layer, topic);
        const before = rebalances.get({ topic });
        stalled = true;
        await produce(topic, second.map((i) => ({ key: i.key, value: i.value })));
        await waitFor("the layer paused on the lake", () => {
          return layer.status().sinksDown.includes("lake");
        });
        // The scenario, not an assertion: hold the batch past two session timeouts.
        await delay(2 * SESSION_TIMEOUT_MS + 2_000);
        assert.ok(layer.status().sinksDown.includes("lake"), "still paused after the hold");
        stalled = false;
        await waitCommitted(layer, topic);
        assert.equal(rebalances.get({ topic }), before, "no rebalance while the batch was held");
        assert.deepEqual(layer.status().partitions.map((p) => p.partition), [0]);
        const valid = validEvents([...first, ...second]);
        const expected = JSON.stringify(sorted(referenceTotals(valid, plan.speed.windowMs)));
        await waitFor("every window written (idle timeout)", async () => {
          return JSON.stringify(sorted(await readBytes(db))) === expected;
        });
        assert.deepEqual(
          sorted(await readBytes(db)),
          sorted(referenceTotals(valid, plan.speed.windowMs)),
        );
      } finally {
        await layer.stop();
      }
    } finally {
      await db.close();
      await scene.drop();
    }
  },
});
