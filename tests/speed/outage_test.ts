/**
 * PostgreSQL going away under the speed layer: connections to its database
 * are refused and the open ones terminated. The layer retries with backoff,
 * pauses consumption, says so, drops nothing, and ends with exact totals once
 * the database is back.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import postgres from "postgres";
import { migrate, openDb } from "../../src/db/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import { pgAdminUrl } from "../_support/services.ts";
import {
  produce,
  readBytes,
  referenceTotals,
  sorted,
  speedScene,
  startOnKafka,
  validEvents,
  waitCommitted,
  waitFor,
} from "../_support/speed_fixture.ts";

Deno.test({
  name: "speed layer: a PostgreSQL outage is retried, nothing is lost, totals exact after recovery",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const scene = await speedScene("speed-outage", 3);
    const { topic, plan } = scene;
    const gen = createGenerator({
      seed: 21,
      devices: 100,
      startMs: Date.now() - 7_200_000,
      rate: 10,
    });
    const items = Array.from({ length: 6_000 }, () => gen.next());
    const admin = postgres(pgAdminUrl(), { max: 1, onnotice: () => {} });
    const db = await openDb({ url: scene.dbUrl, maxConnections: 2 });
    const block = async (allow: boolean) => {
      await admin.unsafe(`ALTER DATABASE ${scene.dbName} ALLOW_CONNECTIONS ${allow}`);
      if (!allow) {
        await admin.unsafe(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${scene.dbName}'`,
        );
      }
    };
    try {
      await migrate(db);
      await produce(topic, items.slice(0, 3_000).map((i) => ({ key: i.key, value: i.value })));
      const registry = new Registry();
      const { layer } = await startOnKafka(plan, db, registry);
      await waitCommitted(layer, topic);

      await block(false);
      await produce(topic, items.slice(3_000).map((i) => ({ key: i.key, value: i.value })));
      await waitFor("postgres reported down", () => layer.status().sinksDown.includes("postgres"));
      await delay(2_000);
      const stuck = layer.status().partitions.map((p) => p.storedOffset);
      await block(true);

      await waitCommitted(layer, topic);
      const expected = referenceTotals(validEvents(items), 60_000);
      await waitFor("windows visible", async () => (await readBytes(db)).size >= expected.size);
      assert.deepEqual(layer.status().sinksDown, []);
      await layer.stop();
      assert.deepEqual(sorted(await readBytes(db)), sorted(expected));
      assert.ok(registry.counter("speed_sink_retries_total", "").get({ sink: "postgres" }) > 0);
      assert.ok(stuck.reduce((a, b) => a + b, 0) < 6_000, "nothing was stored during the outage");
    } finally {
      await block(true).catch(() => {});
      await admin.end();
      await db.close();
      await scene.drop();
    }
  },
});
