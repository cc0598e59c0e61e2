/**
 * The lifecycle of `main.ts start` (src/runtime/pipeline.ts) as a child
 * process: the API opens before the source and the speed layer have started
 * (`/health` at once, `/ready` naming what is still starting), and the plan's
 * generation survives restarts (the same plan keeps it, a plan edited while
 * the pipeline was down gets the next one).
 */
import assert from "node:assert/strict";
import { freshDatabase, freshTopic, kafkaBrokers } from "../_support/services.ts";
import { spawnStart, until } from "../_support/start_process.ts";

/** Nothing listens here (the brief's port range): a Kafka source's start cannot finish. */
const DEAD_BROKER = "127.0.0.1:18509";

Deno.test({
  name:
    "start opens the API before the speed layer's start completes: /health answers, /ready says the speed layer is starting",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fresh = await freshDatabase("early_api");
    const dir = await Deno.makeTempDir({ prefix: "early_api_" });
    const port = 18500;
    const file = `${dir}/pipeline.yaml`;
    // Quota alerts start before the API, and publish to a broker that is up.
    const alerts = await freshTopic("early_api_alerts", 1);
    await Deno.writeTextFile(
      file,
      `source:
  kind: kafka
  kafka: { brokers: ${DEAD_BROKER}, topic: early_api }
speed:
  quota_alerts:
    outputs: { kafka: { brokers: ${kafkaBrokers().join(",")}, topic: ${alerts} } }
lake: { uri: file://${dir}/lake }
database: { url: ${fresh.url} }
api: { port: ${port} }
`,
    );
    const start = spawnStart(file, `${dir}/start.log`, port);
    try {
      const health = await until(
        "GET /health",
        () => start.get("/health").catch(() => undefined),
        60_000,
      );
      assert.equal(health.status, 200);
      const ready = await start.get("/ready");
      assert.equal(ready.status, 503, JSON.stringify(ready.body));
      const components = ready.body.components as Record<string, Record<string, unknown>>;
      assert.equal(components.speed.state, "starting");
      assert.equal(components.speed.ok, false);
      assert.equal(components.source.ok, false);
      assert.match(String(components.source.error), /starting/);
      assert.equal(components.postgres.ok, true);
      assert.deepEqual((ready.body.down as string[]).sort(), ["source", "speed"]);
      // The rest of the API answers meanwhile.
      const config = await start.get("/api/v1/config");
      assert.equal(config.status, 200);
      assert.equal(config.body.generation, 1);
    } finally {
      start.kill();
      await start.proc.status;
      await fresh.drop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

function simulatorConfig(dir: string, dbUrl: string, port: number, flush: string): string {
  return `source:
  kind: simulator
  kafka: { topic: gen_restart }
  simulator: { rate: 50, seed: 3 }
speed:
  flush_interval: ${flush}
lake: { uri: file://${dir}/lake }
database: { url: ${dbUrl}, allow_simulator_writes: true }
batch: { enabled: false }
api: { port: ${port} }
`;
}

Deno.test({
  name:
    "start keeps the plan's generation across restarts: the same plan keeps it, a plan edited while down is the next",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fresh = await freshDatabase("gen_restart");
    const dir = await Deno.makeTempDir({ prefix: "gen_restart_" });
    const port = 18501;
    const file = `${dir}/pipeline.yaml`;
    const write = (flush: string) =>
      Deno.writeTextFile(file, simulatorConfig(dir, fresh.url, port, flush));
    const run = async (i: number, f: (s: ReturnType<typeof spawnStart>) => Promise<void>) => {
      const start = spawnStart(file, `${dir}/start${i}.log`, port);
      try {
        await until("/ready", async () => {
          const r = await start.get("/ready").catch(() => undefined);
          return r?.status === 200 ? r : undefined;
        }, 90_000);
        await f(start);
        assert.equal(await start.stop(), 0, start.tail());
      } finally {
        start.kill();
      }
    };
    const generation = async (s: ReturnType<typeof spawnStart>) =>
      (await s.get("/api/v1/config")).body.generation;
    try {
      await write("200ms");
      await run(1, async (s) => {
        assert.equal(await generation(s), 1);
        await write("300ms"); // a live edit: generation 2
        await until("generation 2", async () => (await generation(s)) === 2 || undefined, 30_000);
      });
      await run(2, async (s) => {
        assert.equal(await generation(s), 2, "a restart on the same plan keeps its generation");
        const ready = await s.get("/ready");
        assert.equal(
          (ready.body.components as Record<string, { generation: number }>).config.generation,
          2,
        );
      });
      await write("400ms"); // edited while down
      await run(3, async (s) => {
        assert.equal(await generation(s), 3, "a plan edited while down is the next generation");
      });
    } finally {
      await fresh.drop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
