/**
 * The speed layer end to end on real Kafka, PostgreSQL and a local lake: a
 * seeded simulator run (with out-of-order events inside the lateness) gives
 * exactly the `bytes` rows computed from the produced events.
 */
import assert from "node:assert/strict";
import { migrate, openDb } from "../../src/db/mod.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import { listHour, openStore } from "../../src/lake/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import { startSpeedLayer } from "../../src/speed/mod.ts";
import { kafkaBrokers } from "../_support/services.ts";
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

const HOUR = 3_600_000;

Deno.test({
  name: "startSpeedLayer() gives exact totals for a seeded simulator run",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const windowMs = 60_000;
    const scene = await speedScene("speed-exact", 3, { windowMs, latenessMs: 5_000 });
    const { topic, plan } = scene;
    // Late events up to 8 s: within what the windows still accept (2 x lateness).
    const startMs = Math.floor(Date.now() / HOUR) * HOUR - 2 * HOUR + 50 * 60_000;
    const gen = createGenerator({
      seed: 7,
      devices: 40,
      antennas: 5,
      startMs,
      rate: 10,
      lateShare: 0.1,
      maxLatenessMs: 8_000,
    });
    const items = Array.from({ length: 3_000 }, () => gen.next());
    await produce(topic, items.map((i) => ({ key: i.key, value: i.value })));

    const db = await openDb({ url: scene.dbUrl });
    const registry = new Registry();
    try {
      await migrate(db);
      const source = createKafkaSource({
        brokers: kafkaBrokers(),
        clientId: "speed-test",
        topic,
        group: plan.source.kafka.group,
        fromBeginning: true,
      });
      const store = openStore(plan.lake);
      const layer = await startSpeedLayer({ plan, db, store, source, registry });
      const expected = referenceTotals(validEvents(items), windowMs);
      await waitCommitted(layer, topic);
      // The idle timeout closes the last windows without further events.
      await waitFor(
        "every window visible",
        async () => (await readBytes(db)).size >= expected.size,
      );
      const counters = layer.status().counters;
      await layer.stop();

      assert.deepEqual(sorted(await readBytes(db)), sorted(expected));
      assert.equal(counters.consumed, 3_000);
      assert.equal(counters.valid, 3_000);
      assert.equal(counters.lateDropped, 0);
      assert.ok(counters.lateUpdated > 0, "some late events updated written windows");
      // Every valid event is in the lake, once.
      const offsets = new Set<string>();
      let rows = 0;
      for (const h of [startMs - HOUR, startMs, startMs + HOUR].map((t) => t - (t % HOUR))) {
        for (const f of await listHour(store, h)) {
          rows += f.lastOffset - f.firstOffset + 1 >= 0 ? 1 : 0;
          offsets.add(f.key);
        }
      }
      assert.ok(rows > 0);
      assert.equal(registry.counter("lake_rows_written_total", "").get(), 3_000);
      const dl = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM dead_letters");
      assert.equal(dl[0].n, 0);
    } finally {
      await db.close();
      await scene.drop();
    }
  },
});
