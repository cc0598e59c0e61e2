/**
 * Flush participants (src/speed/participant.ts) on real Kafka and
 * PostgreSQL: what a participant writes is in the partition's flush
 * transaction, and a replay (the layer resuming below its applied offset)
 * never shows it an event twice.
 */
import assert from "node:assert/strict";
import { migrate, openDb } from "../../src/db/mod.ts";
import type { Queryable } from "../../src/db/db.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import type { FlushParticipant } from "../../src/speed/mod.ts";
import { startSpeedLayer } from "../../src/speed/mod.ts";
import { kafkaBrokers } from "../_support/services.ts";
import { produce, speedScene, validEvents, waitCommitted } from "../_support/speed_fixture.ts";

/** Records every event it is shown, by (partition, offset), in the flush transaction. */
function recorder(): FlushParticipant & { committedRows: number } {
  const pending = new Map<number, number[]>();
  const self = {
    name: "recorder",
    committedRows: 0,
    event(e: { partition: number; offset: number }) {
      let list = pending.get(e.partition);
      if (!list) pending.set(e.partition, list = []);
      list.push(e.offset);
    },
    take(partition: number) {
      const offsets = pending.get(partition);
      if (!offsets?.length) return undefined;
      pending.delete(partition);
      return {
        write: async (tx: Queryable) => {
          await tx.query(
            `INSERT INTO participant_seen ("partition", "offset")
             SELECT $1, unnest($2::bigint[])`,
            [partition, offsets],
          );
        },
        committed: () => void (self.committedRows += offsets.length),
      };
    },
  };
  return self;
}

Deno.test({
  name: "a flush participant writes in the flush transaction and never sees a replayed event",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const scene = await speedScene("speed-participant", 2);
    const { topic, plan } = scene;
    const start = Date.now() - 2 * 3_600_000;
    const gen = createGenerator({ seed: 3, devices: 30, startMs: start, rate: 20 });
    const first = Array.from({ length: 1_500 }, () => gen.next());
    await produce(topic, first.map((i) => ({ key: i.key, value: i.value })));
    const db = await openDb({ url: scene.dbUrl });
    const run = async (group: string, participant: FlushParticipant) => {
      const layer = await startSpeedLayer({
        plan,
        db,
        store: openStore(plan.lake),
        source: createKafkaSource({
          brokers: kafkaBrokers(),
          clientId: "participant-test",
          topic,
          group,
          fromBeginning: true,
        }),
        registry: new Registry(),
        participants: [participant],
      });
      return layer;
    };
    try {
      await migrate(db);
      await db.exec(`CREATE TABLE participant_seen ("partition" INT, "offset" BIGINT,
        PRIMARY KEY ("partition", "offset"))`);
      const a = recorder();
      const layerA = await run(`${topic}-a`, a);
      await waitCommitted(layerA, topic);
      await layerA.stop();
      assert.equal(a.committedRows, validEvents(first).length);

      // As if a crash had left nothing durable in the lake: the next layer
      // reads from offset 0 again, a replay below what PostgreSQL applied.
      await db.query("UPDATE speed_progress SET lake_offset = 0");
      const more = Array.from({ length: 500 }, () => gen.next());
      await produce(topic, more.map((i) => ({ key: i.key, value: i.value })));
      const b = recorder();
      const layerB = await run(`${topic}-b`, b);
      await waitCommitted(layerB, topic);
      await layerB.stop();
      assert.equal(b.committedRows, validEvents(more).length, "only the new events");

      // Every valid event once (the primary key would have refused a second).
      const [{ n }] = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM participant_seen",
      );
      assert.equal(n, validEvents([...first, ...more]).length);
      const [{ behind }] = await db.query<{ behind: number }>(
        `SELECT count(*)::int AS behind FROM participant_seen s JOIN speed_progress p
           ON p."partition" = s."partition" WHERE s."offset" >= p.next_offset`,
      );
      assert.equal(behind, 0, "nothing recorded beyond the offset the same transaction stored");
    } finally {
      await db.close();
      await scene.drop();
    }
  },
});
