/**
 * Two speed layers in one consumer group (separate Kafka sources, one
 * database and lake) split the partitions, hand them over on the rebalance,
 * and together give exactly the totals one instance gives.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import type { SpeedLayer } from "../../src/speed/mod.ts";
import {
  endOffsets,
  produce,
  readBytes,
  referenceTotals,
  sorted,
  speedScene,
  startOnKafka,
  validEvents,
  waitFor,
} from "../_support/speed_fixture.ts";

Deno.test({
  name: "speed layer: two instances in one group give exactly the totals of one",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const scene = await speedScene("speed-group", 3, { idleMs: 2_000 });
    const { topic, plan } = scene;
    const gen = createGenerator({
      seed: 5,
      devices: 300,
      startMs: Date.now() - 7_200_000,
      rate: 20,
      lateShare: 0.05,
      maxLatenessMs: 8_000,
    });
    const items = Array.from({ length: 20_000 }, () => gen.next());
    await produce(topic, items.map((i) => ({ key: i.key, value: i.value })));
    const ends = await endOffsets(topic);
    const db = await openDb({ url: scene.dbUrl });
    const layers: SpeedLayer[] = [];
    try {
      await migrate(db);
      layers.push((await startOnKafka(plan, db, new Registry())).layer);
      await delay(300);
      layers.push((await startOnKafka(plan, db, new Registry())).layer);
      await waitFor(
        "both instances own partitions",
        () => layers.every((l) => l.status().partitions.length > 0),
        30_000,
      );
      await waitFor(
        "every partition stored",
        () =>
          [...ends].every(([p, end]) =>
            layers.some((l) =>
              l.status().partitions.some((s) => s.partition === p && s.storedOffset >= end)
            )
          ),
        60_000,
      );
      const expected = referenceTotals(validEvents(items), 60_000);
      await waitFor("windows visible", async () => (await readBytes(db)).size >= expected.size);
      for (const l of layers) await l.stop();
      assert.deepEqual(sorted(await readBytes(db)), sorted(expected));
    } finally {
      for (const l of layers) await l.stop();
      await db.close();
      await scene.drop();
    }
  },
});
