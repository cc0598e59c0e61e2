/**
 * Exactly once, whatever happens: speed layer child processes with quota
 * alerts (tests/_support/speed_child.ts --alerts) are SIGKILLed at random
 * moments and restarted, then two run in one consumer group (a rebalance),
 * over a topic with hundreds of crossings in two hours. In the end every
 * expected alert is in the table exactly once, with the usage of exactly the
 * counted events; exactly once on the alert topic (an attempt a kill left in
 * doubt is looked up there before it is sent again); and at the webhook
 * receiver once per delivery id (it refuses some requests, so some were
 * retried; duplicates of a delivery id are what an idempotent receiver drops).
 * The expected alerts are computed here from the events, per partition in
 * offset order, with the lateness rule of core/quota_alerts.ts.
 */
import assert from "node:assert/strict";
import { countsTowardHour, hourStart, reaches } from "../../src/core/mod.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import { deviceId, keyPartition } from "../../src/simulator/mod.ts";
import { freshDatabase, freshTopic } from "../_support/services.ts";
import { endOffsets, produce, speedPlanYaml, waitFor } from "../_support/speed_fixture.ts";
import {
  alertsYaml,
  insertUsers,
  readAlerts,
  readDeliveries,
  readTopic,
  webhookReceiver,
} from "../_support/alerts_fixture.ts";

const CHILD = new URL("../_support/speed_child.ts", import.meta.url).pathname;
const SECRET = "kill-secret";
const LATENESS_MS = 5_000;
const DEVICES = 600;
const USERS = 300;
const THRESHOLDS = [0.8, 1];

interface Child {
  proc: Deno.ChildProcess;
  status(): { partitions: { partition: number; storedOffset: number }[] };
}

function spawn(configPath: string): Child {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CHILD, "--config", configPath, "--alerts"],
    stdout: "piped",
    stderr: "inherit",
    env: { LOG_LEVEL: Deno.env.get("QA_CHILD_LOG_LEVEL") ?? "error" },
  }).spawn();
  let last = { partitions: [] };
  (async () => {
    let buf = "";
    for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          last = JSON.parse(line).status;
        } catch { /* not a status line */ }
      }
    }
  })().catch(() => {});
  return { proc, status: () => last };
}

Deno.test({
  name: "quota alerts: SIGKILL at random moments, restarts and two instances in one group " +
    "give every expected alert exactly once in the table, on the topic and at the receiver",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const topic = await freshTopic("qa-kill", 3);
    const alertTopic = `${topic}.alerts`;
    const fdb = await freshDatabase("qa_kill");
    const lake = await Deno.makeTempDir({ prefix: "qa_kill_lake_" });
    // Refuses every 7th request: some deliveries are retried.
    const receiver = webhookReceiver(SECRET, (n) => (n % 7 === 6 ? 503 : 200));
    const db = await openDb({ url: fdb.url, maxConnections: 4 });
    const children: Child[] = [];
    try {
      await migrate(db);
      // Two devices per user (on different partitions, mostly), quotas from 100 KB to 820 KB.
      const users = Array.from({ length: USERS }, (_, u) => ({
        email: `k${u}@example.com`,
        quota: 100_000 + (u % 10) * 80_000,
      }));
      const userOf = (d: number) => users[d % USERS];
      await insertUsers(
        db,
        Array.from({ length: DEVICES }, (_, d) => ({ id: deviceId(d), ...userOf(d) })),
      );
      const H0 = hourStart(Date.now()) - 3 * 3_600_000;
      const gen = createGenerator({
        seed: 12,
        devices: DEVICES,
        antennas: 10,
        startMs: H0 + 30 * 60_000, // 30,000 events at 10/s: across the hour's end
        rate: 10,
        lateShare: 0.05,
        maxLatenessMs: 20_000,
        malformedShare: 0.01,
      });
      const items = Array.from({ length: 30_000 }, () => gen.next());

      // What must come out: per partition, in offset order, the counted usage.
      const enc = new TextEncoder();
      const clocks = [-Infinity, -Infinity, -Infinity];
      const usage = new Map<string, number>();
      for (const it of items) {
        if (!it.event) continue;
        const p = keyPartition(enc.encode(it.key), 3);
        const t = it.event.timestamp * 1000;
        if (countsTowardHour(t, clocks[p], LATENESS_MS)) {
          // Device ids count in decimal from 1 (…000000000010 is the tenth device).
          const u = userOf(Number.parseInt(it.event.id.slice(-12), 10) - 1);
          const key = `${u.email}|${hourStart(t)}`;
          usage.set(key, (usage.get(key) ?? 0) + it.event.bytes);
        }
        clocks[p] = Math.max(clocks[p], t);
      }
      const expected = new Set<string>();
      for (const [key, used] of usage) {
        const email = key.split("|")[0];
        const quota = users.find((u) => u.email === email)!.quota;
        for (const t of THRESHOLDS) if (reaches(used, quota, t)) expected.add(`${key}|${t}`);
      }
      assert.ok(expected.size > 300, `many crossings (${expected.size})`);

      const config = async (group: string) => {
        const path = await Deno.makeTempFile({ suffix: ".yaml" });
        await Deno.writeTextFile(
          path,
          speedPlanYaml({
            topic,
            group,
            dbUrl: fdb.url,
            lakeUri: `file://${lake}`,
            latenessMs: LATENESS_MS,
            idleMs: 60_000,
            flushMs: 200,
            maxRows: 2_000,
            speedYaml: alertsYaml({
              kafkaTopic: alertTopic,
              webhook: { url: receiver.url, secret: SECRET, timeout: "2s", backoff: "100ms" },
            }),
          }),
        );
        return path;
      };
      // Produced over ~15 s while the children below consume, so kills land mid-stream.
      const producing = (async () => {
        for (let i = 0; i < items.length; i += 1_000) {
          await produce(
            topic,
            items.slice(i, i + 1_000).map((x) => ({ key: x.key, value: x.value })),
          );
          await new Promise((r) => setTimeout(r, 500));
        }
      })();
      // Killed and restarted, each in a group of its own (a killed member would hold its
      // partitions until its session times out); progress is the layer's own, in PostgreSQL.
      for (let run = 0; run < 5; run++) {
        const child = spawn(await config(`${topic}-k${run}`));
        children.push(child);
        await new Promise((r) => setTimeout(r, 1_500 + Math.random() * 2_500));
        child.proc.kill("SIGKILL");
        await child.proc.status;
      }
      // Two instances in one group: the second's arrival rebalances the partitions.
      const group = await config(`${topic}-final`);
      const a = spawn(group);
      children.push(a);
      await new Promise((r) => setTimeout(r, 1_000 + Math.random() * 1_000));
      const b = spawn(group);
      children.push(b);
      await producing;
      const ends = await endOffsets(topic);
      await waitFor(
        "every offset stored",
        () =>
          [...ends].every(([p, end]) =>
            [a, b].some((c) =>
              c.status().partitions.some((s) => s.partition === p && s.storedOffset >= end)
            )
          ),
        180_000,
      );
      await waitFor("every share folded and every delivery made", async () => {
        const rows = await db.query<{ n: number; s: number }>(
          `SELECT (SELECT count(*) FROM quota_alert_deliveries WHERE state <> 'delivered') AS n,
             (SELECT count(*) FROM quota_usage_shares) AS s`,
        );
        return Number(rows[0].n) === 0 && Number(rows[0].s) === 0 &&
          (await readAlerts(db)).length >= expected.size;
      }, 120_000);
      await waitFor(
        "both instances own partitions",
        () => [a, b].every((c) => c.status().partitions.length > 0),
        60_000,
      );
      for (const c of [a, b]) c.proc.kill("SIGTERM");
      for (const c of [a, b]) assert.equal((await c.proc.status).code, 0, "SIGTERM exits 0");

      // The table: every expected alert once, and nothing else.
      const alerts = await readAlerts(db);
      const keys = alerts.map((x) => `${x.email}|${x.hour}|${x.threshold}`);
      assert.equal(new Set(keys).size, keys.length, "no alert twice");
      assert.deepEqual([...keys].sort(), [...expected].sort());
      const stored = await db.query<{ email: string; hour: Date; usage: number }>(
        "SELECT email, hour, usage FROM quota_usage",
      );
      assert.deepEqual(
        new Map(stored.map((r) => [`${r.email}|${r.hour.getTime()}`, Number(r.usage)])),
        usage,
        "every counted event once in the running usage",
      );
      for (const x of alerts) {
        const quota = users.find((u) => u.email === x.email)!.quota;
        assert.ok(reaches(x.usage, quota, x.threshold), `${x.email} ${x.threshold}: reached`);
      }

      // The topic: each alert exactly once.
      const ids = new Set(alerts.map((x) => `quota-alert-${x.id}-kafka`));
      const msgs = await readTopic(alertTopic, alerts.length, 60_000);
      const onTopic = msgs.map((m) => m.deliveryId);
      assert.equal(new Set(onTopic).size, onTopic.length, "no alert twice on the topic");
      assert.deepEqual(new Set(onTopic), ids);
      assert.ok(msgs.every((m) => m.key === m.value.email), "keyed by email");

      // The receiver: every alert, once per delivery id.
      assert.deepEqual(
        new Set(receiver.accepted.keys()),
        new Set(alerts.map((x) => `quota-alert-${x.id}-webhook`)),
      );
      assert.ok(receiver.requests.every((r) => r.signed), "every request signed");
      assert.ok(receiver.requests.some((r) => r.attempt > 1), "some deliveries were retried");
      const webhook = await readDeliveries(db, "webhook");
      assert.ok(webhook.every((d) => d.state === "delivered"));
      const duplicates = receiver.requests.filter((r) => r.status === 200).length -
        receiver.accepted.size;
      console.log(
        `qa-kill: ${alerts.length} alerts; ${receiver.requests.length} webhook requests, ` +
          `${duplicates} duplicate deliveries dropped by delivery id`,
      );
    } finally {
      for (const c of children) {
        try {
          c.proc.kill("SIGKILL");
        } catch { /* exited */ }
        await c.proc.status;
      }
      await receiver.close();
      await db.close();
      await fdb.drop();
      await Deno.remove(lake, { recursive: true });
    }
  },
});
