/**
 * `GET /api/v1/quota/alerts/stream` against real PostgreSQL: a client that
 * connects fresh first gets the current hour's stored alerts (not older
 * hours'), then live ones; `since=` and `Last-Event-ID` replay from an id as
 * before, and `email` filters both the catch-up and the live part.
 */
import assert from "node:assert/strict";
import { LiveFeed } from "../../src/alerts/feed.ts";
import { createApp } from "../../src/api/mod.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { apiTestPlan } from "../_support/api.ts";
import { freshDatabase } from "../_support/services.ts";
import { quiet } from "../_support/api_env.ts";
import { waitFor } from "../_support/speed_fixture.ts";

const HOUR = 3_600_000;
/** The API's "now": half past ten; the current hour is 10:00-11:00. */
const NOW = Date.UTC(2026, 10, 28, 10, 30);
const CURRENT = Date.UTC(2026, 10, 28, 10);

/** Reads the events of a Server-Sent Events body until `stop()`. */
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
        const f: Record<string, string> = {};
        for (const line of buf.slice(0, i).split("\n")) {
          const at = line.indexOf(": ");
          if (!line.startsWith(":") && at > 0) f[line.slice(0, at)] = line.slice(at + 2);
        }
        buf = buf.slice(i + 2);
        if (f.data) events.push({ id: f.id, event: f.event, data: JSON.parse(f.data) });
      }
    }
  })();
  return {
    events,
    ids: () => events.map((e) => Number(e.id)),
    async stop() {
      await reader.cancel().catch(() => {});
      await done;
    },
  };
}

Deno.test({
  name:
    "alert stream: the current hour's alerts on connect, then live; since and Last-Event-ID replay from an id",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fresh = await freshDatabase("api_stream");
    const db = await openDb({ url: fresh.url, maxConnections: 4 });
    const feed = new LiveFeed({ db, log: quiet, self: "test:1", pollMs: 100 });
    const readers: { stop(): Promise<void> }[] = [];
    try {
      await migrate(db);
      // Ids 1-2 of the previous hour, 3-5 of the current one (4 is another user's),
      // all made durable by another process ten minutes ago: not new any more.
      const insert = (hour: number, email: string, threshold: number, agoMs = 0) =>
        db.query<{ id: number }>(
          `INSERT INTO quota_alerts
             (hour, email, threshold, quota, usage, source, raised_by, detected_at)
           VALUES ($1::timestamp, $2, $3, 1000, 1000, 'batch', 'other:2', $4)
           RETURNING id`,
          [new Date(hour), email, threshold, new Date(Date.now() - agoMs)],
        );
      const ago = 10 * 60_000;
      await insert(CURRENT - HOUR, "a@example.com", 0.8, ago);
      await insert(CURRENT - HOUR, "a@example.com", 1, ago);
      await insert(CURRENT, "a@example.com", 0.8, ago);
      await insert(CURRENT, "b@example.com", 0.8, ago);
      await insert(CURRENT, "a@example.com", 1, ago);

      const plan = apiTestPlan({ lakeUri: "file:///nonexistent" });
      const app = createApp({ plan, db, registry: new Registry(), alerts: feed, clock: () => NOW });
      const open = async (path: string, headers: Record<string, string> = {}) => {
        const r = await app.request(path, { headers });
        assert.equal(r.status, 200, path);
        assert.equal(r.headers.get("Content-Type"), "text/event-stream");
        const reader = sseReader(r.body!);
        readers.push(reader);
        return reader;
      };

      const fresh1 = await open("/api/v1/quota/alerts/stream");
      const onlyB = await open("/api/v1/quota/alerts/stream?email=b%40example.com");
      const since = await open("/api/v1/quota/alerts/stream?since=1");
      const resumed = await open("/api/v1/quota/alerts/stream", { "Last-Event-ID": "3" });
      await waitFor(
        "catch-up",
        () => fresh1.events.length >= 3 && since.events.length >= 4,
        10_000,
      );
      assert.deepEqual(fresh1.ids(), [3, 4, 5]);
      assert.ok(fresh1.events.every((e) => e.event === "quota_alert"));
      assert.equal(fresh1.events[0].data.hour, new Date(CURRENT).toISOString());
      assert.deepEqual(since.ids(), [2, 3, 4, 5]);

      // Then live: an alert another process makes durable reaches every client once.
      const [{ id: live }] = await insert(CURRENT, "b@example.com", 1);
      await waitFor(
        "live alert",
        () => fresh1.events.length >= 4 && onlyB.events.length >= 2,
        10_000,
      );
      assert.deepEqual(fresh1.ids(), [3, 4, 5, Number(live)]);
      assert.deepEqual(onlyB.ids(), [4, Number(live)]);
      await waitFor("resumed", () => resumed.ids().includes(Number(live)), 10_000);
      assert.deepEqual(resumed.ids(), [4, 5, Number(live)]);
      assert.deepEqual(since.ids(), [2, 3, 4, 5, Number(live)]);

      const bad = await app.request("/api/v1/quota/alerts/stream", {
        headers: { "Last-Event-ID": "x" },
      });
      assert.equal(bad.status, 400);
      assert.match((await bad.json()).error, /^Last-Event-ID: /);
    } finally {
      for (const r of readers) await r.stop();
      await feed.close();
      await db.close();
      await fresh.drop();
    }
  },
});
