/**
 * `main.ts start` as a user runs it: a child process on embedded defaults (the
 * in-process simulator, PGlite served over the wire protocol, a local lake),
 * with short windows so rows arrive within the test. It must serve the API,
 * write windows to `bytes` and Parquet files to the lake, stop cleanly on
 * SIGTERM within 10 s, and pick up where it left off after a restart.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import postgres from "postgres";
import { pgAdminUrl } from "../_support/services.ts";
import { freePort } from "../_support/start_process.ts";

const REPO = new URL("../..", import.meta.url).pathname;

async function waitFor<T>(what: string, f: () => Promise<T | undefined>, ms: number): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await delay(250);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

function spawnStart(config: string, env: Record<string, string> = {}) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "start", "--config", config],
    cwd: REPO,
    env: { LOG_LEVEL: "info", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

function collect(stream: ReadableStream<Uint8Array>): Promise<string> {
  return new Response(stream).text();
}

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(d: string) {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(`${d}/${e.name}`);
      else out.push(`${d}/${e.name}`);
    }
  }
  await walk(dir).catch(() => {});
  return out;
}

Deno.test({
  name: "start runs the whole pipeline on embedded defaults and stops cleanly on SIGTERM",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "start-test-" });
    const apiPort = freePort();
    const dbPort = freePort();
    const config = `${dir}/pipeline.yaml`;
    await Deno.writeTextFile(
      config,
      `
source:
  kind: simulator
  simulator: { rate: 300, seed: 7, late_share: 0.02, malformed_share: 0.02, max_lateness: 3s }
speed:
  window: 10s
  allowed_lateness: 2s
  idle_timeout: 5s
  flush_interval: 200ms
lake:
  uri: file://./lake
  roll: { max_rows: 100000, max_bytes: 64MiB, max_age: 2s }
database:
  embedded: { dir: ./pglite, port: ${dbPort} }
api:
  port: ${apiPort}
`,
    );
    const api = `http://127.0.0.1:${apiPort}`;
    const dbUrl = `postgres://postgres@127.0.0.1:${dbPort}/postgres`;

    let child = spawnStart(config);
    let stderr = collect(child.stderr);
    void collect(child.stdout);
    try {
      await waitFor("GET /health", async () => {
        const r = await fetch(`${api}/health`);
        await r.body?.cancel();
        return r.ok ? true : undefined;
      }, 90_000);
      // The API opens before the speed layer has started: /ready says so until it has.
      const ready = await waitFor("GET /ready", async () => {
        const r = await fetch(`${api}/ready`);
        if (r.status === 200) return r;
        await r.body?.cancel();
      }, 60_000);
      assert.equal(ready.status, 200, await ready.clone().text());
      await ready.body?.cancel();

      const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });
      try {
        const n = await waitFor("windows in bytes", async () => {
          const [{ n }] = await sql`SELECT count(*)::int AS n FROM bytes`;
          return n > 0 ? n as number : undefined;
        }, 60_000);
        assert.ok(n > 0);
        const types = (await sql`SELECT DISTINCT type FROM bytes ORDER BY type`).map((r) => r.type);
        assert.deepEqual(types, ["antenna_bytes_total", "app_bytes_total", "user_bytes_total"]);
        const [{ dl }] = await sql`SELECT count(*)::int AS dl FROM dead_letters`;
        assert.ok(dl > 0, "malformed simulator messages are dead-lettered");
      } finally {
        await sql.end();
      }
      await waitFor("Parquet files in the lake", async () => {
        const parquet = (await files(`${dir}/lake`)).filter((f) => f.endsWith(".parquet"));
        return parquet.length > 0 ? parquet : undefined;
      }, 30_000);
      const parquet = (await files(`${dir}/lake`)).filter((f) => f.endsWith(".parquet"));
      assert.ok(parquet.every((f) => /year=\d{4}\/month=\d\d\/day=\d\d\/hour=\d\d\/part-/.test(f)));

      const series = await fetch(`${api}/api/v1/metrics/antenna_bytes_total/series?granularity=5m`);
      assert.equal(series.status, 200);
      const body = await series.json();
      assert.ok(body.points.length > 0, "the API serves the speed windows");

      // `batch` beside a running start on embedded defaults goes through the
      // port start serves the embedded database on.
      const prevHour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 - 3_600_000);
      const batch = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "main.ts", "batch", "--hour", prevHour.toISOString().slice(0, 13)]
          .concat(["--config", config]),
        cwd: REPO,
        stdin: "null",
      }).output();
      const batchOut = new TextDecoder().decode(batch.stdout) +
        new TextDecoder().decode(batch.stderr);
      assert.equal(batch.code, 0, batchOut);
      assert.match(batchOut, /connecting through its port/);
      assert.match(batchOut, /succeeded/);

      const t0 = Date.now();
      // systemd and a terminal signal `deno task` and this process alike, and
      // deno task forwards it: the same request arrives twice.
      child.kill("SIGTERM");
      child.kill("SIGTERM");
      const status = await child.status;
      const elapsed = Date.now() - t0;
      const log = await stderr;
      assert.equal(status.code, 0, log.slice(-2000));
      assert.ok(elapsed < 10_000, `stopped in ${elapsed} ms`);
      assert.match(log, /stopped cleanly/);

      // A restart resumes: the offsets continue from what PostgreSQL stored.
      child = spawnStart(config);
      stderr = collect(child.stderr);
      void collect(child.stdout);
      await waitFor("GET /health after restart", async () => {
        const r = await fetch(`${api}/health`);
        await r.body?.cancel();
        return r.ok ? true : undefined;
      }, 90_000);
      // The partitions resume once the speed layer has started (/ready), which comes after /health.
      await waitFor("GET /ready after restart", async () => {
        const r = await fetch(`${api}/ready`);
        await r.body?.cancel();
        return r.ok ? true : undefined;
      }, 60_000);
      child.kill("SIGTERM");
      assert.equal((await child.status).code, 0, (await stderr).slice(-2000));
      const restartLog = await stderr;
      assert.match(restartLog, /"starts":\{"0":\d+/, "partitions resume from stored offsets");
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already exited */ }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name: "start refuses to feed simulated events into a configured database",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "start-refuse-" });
    const config = `${dir}/pipeline.yaml`;
    await Deno.writeTextFile(
      config,
      'source: { kind: simulator }\nlake: { uri: file://./lake }\ndatabase: { url: "${DATABASE_URL}" }\n',
    );
    try {
      const child = spawnStart(config, { DATABASE_URL: pgAdminUrl() });
      const [status, err] = await Promise.all([
        child.status,
        collect(child.stderr),
        collect(child.stdout),
      ]);
      assert.equal(status.code, 1);
      const lines = err.trim().split("\n").filter((l) => l.startsWith("error:"));
      assert.equal(lines.length, 1, err);
      assert.match(lines[0], /refusing to write simulated events.*ALLOW_SIMULATOR_WRITES=true/);
      assert.doesNotMatch(err, /at .*\.ts:\d+/, "no stack trace");
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
