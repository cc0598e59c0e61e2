/**
 * Quota alerts on the embedded database (PGlite, one transaction for every
 * partition of a flush) with the in-process simulator, as `start` runs them:
 * the seeded low-quota users reach 80 % and 100 % within seconds at a high
 * rate, each threshold once; the API lists them, shows the running usage
 * with those users first, and streams them as Server-Sent Events, resuming
 * from `Last-Event-ID` without a gap or a repeat.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/api/mod.ts";
import { planFromYaml } from "../../src/config/mod.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { LOW_QUOTA, seedUsers } from "../../src/simulator/users.ts";
import { openStore } from "../../src/lake/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { createDbTimelineStore, createSimulatorSource } from "../../src/simulator/mod.ts";
import { startSpeedLayer } from "../../src/speed/mod.ts";
import { startQuotaAlerts } from "../../src/alerts/mod.ts";
import { waitFor } from "../_support/speed_fixture.ts";
import { quiet, readAlerts } from "../_support/alerts_fixture.ts";

/** Reads Server-Sent Events from a response body until `stop()` or `n` events. */
function sseReader(body: ReadableStream<Uint8Array>) {
  const events: { id: string; event: string; data: Record<string, unknown> }[] = [];
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const done = (async () => {
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: "", done: true }));
      if (done) return;
      buf += value;
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const f: Record<string, string> = {};
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const at = line.indexOf(": ");
          if (at > 0) f[line.slice(0, at)] = line.slice(at + 2);
        }
        if (f.data) events.push({ id: f.id, event: f.event, data: JSON.parse(f.data) });
      }
    }
  })();
  return {
    events,
    async stop() {
      await reader.cancel().catch(() => {});
      await done;
    },
  };
}

Deno.test({
  name: "quota alerts on PGlite with the simulator: low-quota users alert within seconds, " +
    "once each, listed, streamed and resumable",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const lake = await Deno.makeTempDir({ prefix: "qa_pglite_lake_" });
    const plan = planFromYaml(
      `
source:
  kind: simulator
  simulator: { devices: 20, rate: 3000, late_share: 0.05, malformed_share: 0.01 }
speed: { flush_interval: 200ms, idle_timeout: 2s }
lake: { uri: "file://${lake}", roll: { max_age: 1s }, compaction: { enabled: false } }
`,
      { env: {} },
    );
    const db = await openDb({});
    const registry = new Registry();
    const readers: { stop(): Promise<void> }[] = [];
    let stopAll = async () => {};
    try {
      await migrate(db);
      await seedUsers(db, { devices: 20 });
      const alerts = await startQuotaAlerts({ plan, db, registry, log: quiet, pollMs: 200 });
      const source = createSimulatorSource({
        simulator: plan.source.simulator,
        timeline: createDbTimelineStore(db, plan.source.kafka.topic),
        partitions: 3,
        maxPayloadBytes: plan.schema.maxPayloadBytes,
      });
      const app = createApp({ plan, db, registry, alerts: alerts.feed });
      const live = sseReader((await app.request("/api/v1/quota/alerts/stream")).body!);
      readers.push(live);
      const layer = await startSpeedLayer({
        plan,
        db,
        store: openStore(plan.lake),
        source,
        registry,
        log: quiet,
        participants: [alerts.participant],
      });
      stopAll = async () => {
        await layer.stop();
        await alerts.stop();
      };

      // Devices 5, 10, 15 and 20 have the low quota: each reaches 80 % and 100 % of it.
      const low = ["user5", "user10", "user15", "user20"].map((u) => `${u}@example.com`);
      await waitFor("eight alerts streamed", () => live.events.length >= 8, 90_000);
      const rows = await readAlerts(db);
      const firstHour = rows[0].hour;
      const ofHour = rows.filter((r) => r.hour === firstHour);
      assert.deepEqual(
        ofHour.map((r) => `${r.email} ${r.threshold}`).sort(),
        low.flatMap((e) => [`${e} 0.8`, `${e} 1`]).sort(),
      );
      assert.ok(ofHour.every((r) => r.quota === LOW_QUOTA && r.source === "speed"));
      const streamed = live.events.filter((e) => e.data.hour === new Date(firstHour).toISOString());
      assert.equal(streamed.length, 8, "each alert once on the stream");
      assert.ok(live.events.every((e) => e.event === "quota_alert"));

      const list = await (await app.request(
        `/api/v1/quota/alerts?from=${new Date(firstHour).toISOString()}`,
      )).json();
      assert.deepEqual(
        list.alerts.filter((a: { hour: string }) => a.hour === new Date(firstHour).toISOString())
          .map((a: { id: number }) => a.id),
        ofHour.map((r) => r.id),
      );
      const usage = await (await app.request(
        `/api/v1/quota/usage?hour=${new Date(firstHour).toISOString()}&limit=4`,
      )).json();
      assert.deepEqual(usage.users.map((u: { email: string }) => u.email).sort(), low.sort());
      assert.ok(usage.users.every((u: { share: number }) => u.share >= 1));

      // A client resuming after the third alert gets the rest, in order, then live ones.
      const resumed = sseReader(
        (await app.request("/api/v1/quota/alerts/stream", {
          headers: { "Last-Event-ID": String(rows[2].id) },
        })).body!,
      );
      readers.push(resumed);
      await waitFor("replayed", () => resumed.events.length >= rows.length - 3, 10_000);
      assert.deepEqual(
        resumed.events.slice(0, rows.length - 3).map((e) => Number(e.id)),
        rows.slice(3).map((r) => r.id),
      );
      const bad = await app.request("/api/v1/quota/alerts/stream?since=x");
      assert.equal(bad.status, 400);
      assert.match(
        await (await app.request("/metrics")).text(),
        /quota_alert_detection_seconds_count \d+/,
      );
    } finally {
      for (const r of readers) await r.stop();
      await stopAll();
      await db.close();
      await Deno.remove(lake, { recursive: true });
    }
  },
});
