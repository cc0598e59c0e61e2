/**
 * The operational routes against real PostgreSQL and the real batch runner:
 * /health and /ready (200, and 503 naming the component that is down),
 * batch runs over HTTP (202 + Location, status, 404, 409 on a busy hour,
 * 401/403 from the write guard), /metrics parsed as Prometheus text, and
 * /openapi.json matching the routes Hono serves.
 */
import assert from "node:assert/strict";
import { apiEnv, getJson, H, HOUR, LOOPBACK, REMOTE } from "../_support/api_env.ts";
import type { SpeedStatus } from "../../src/speed/mod.ts";
import { isLoopback } from "../../src/api/mod.ts";

const speedStatus = (over: Partial<SpeedStatus> = {}): SpeedStatus => ({
  running: true,
  sinksDown: [],
  partitions: [
    {
      partition: 0,
      clockMs: H + 2 * HOUR,
      watermarkMs: H + 2 * HOUR - 15_000,
      nextOffset: 120,
      storedOffset: 120,
      committedOffset: 118,
      lag: 7,
    },
  ],
  counters: {
    consumed: 120,
    valid: 118,
    deadLetters: 2,
    lateUpdated: 1,
    lateDropped: 3,
    windowsWritten: 40,
    flushes: 9,
  },
  ...over,
});

const source = { kind: "simulator", lag: () => Promise.resolve(new Map([[0, 7], [1, 0]])) };

Deno.test("/health is 200; /ready is 200 with every component, 503 naming the ones down", async () => {
  const env = await apiEnv({ speedData: false });
  try {
    const up = env.app({ speed: { status: () => speedStatus() }, source });
    const h = await getJson(up, "/health");
    assert.equal(h.status, 200);
    assert.equal(h.body.status, "ok");

    const r = await getJson(up, "/ready");
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.down, []);
    const c = r.body.components as Record<string, Record<string, unknown>>;
    assert.deepEqual(c.source.lag, { "0": 7, "1": 0 });
    assert.equal(c.source.kind, "simulator");
    assert.equal(c.postgres.backend, "postgres");
    assert.equal(c.scheduler.lastCompletedHour, null);
    assert.equal((c.speed.partitions as { lag: number }[])[0].lag, 7);

    await env.batch.runHour(H, "manual");
    const r2 = await getJson(up, "/ready");
    const c2 = r2.body.components as Record<string, Record<string, unknown>>;
    assert.equal(c2.scheduler.lastCompletedHour, new Date(H).toISOString());

    const down = env.app({
      speed: { status: () => speedStatus({ sinksDown: ["postgres"] }) },
      source: { kind: "kafka", lag: () => Promise.reject(new Error("broker unreachable")) },
      store: { uri: "gs://nowhere", list: () => new Promise(() => {}) }, // hangs
      probeTimeoutMs: 200,
    });
    const d = await getJson(down, "/ready");
    assert.equal(d.status, 503);
    assert.deepEqual(d.body.down, ["source", "speed", "lake"]);
    const dc = d.body.components as Record<string, Record<string, unknown>>;
    assert.match(String(dc.source.error), /broker unreachable/);
    assert.match(String(dc.lake.error), /lake timed out after 200 ms/);
    assert.equal((await getJson(down, "/health")).status, 200);
  } finally {
    await env.done();
  }
});

Deno.test("POST /api/v1/batch/runs queues hours (202 + Location); GET shows status; 404, 409, 400", async () => {
  const env = await apiEnv({ speedData: false });
  try {
    const app = env.app();
    const post = (body: unknown) =>
      app.request("/api/v1/batch/runs", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      }, LOOPBACK);

    const res = await post({ hour: "2026-11-28T10" });
    assert.equal(res.status, 202);
    const { runIds } = await res.json();
    assert.equal(runIds.length, 1);
    assert.equal(res.headers.get("location"), `/api/v1/batch/runs/${runIds[0]}`);
    await env.batch.idle();
    const run = await getJson(app, `/api/v1/batch/runs/${runIds[0]}`);
    assert.equal(run.status, 200);
    assert.equal(run.body.status, "succeeded");
    assert.equal(run.body.trigger, "api");
    assert.equal(run.body.hour, new Date(H).toISOString());
    assert.equal((run.body.summary as { rowsRead: number }).rowsRead, 2000);

    const range = await post({ from: "2026-11-28T10", to: "2026-11-28T11" });
    assert.equal(range.status, 202);
    assert.equal((await range.json()).runIds.length, 2);
    await env.batch.idle();
    const list = await getJson(app, "/api/v1/batch/runs?limit=2");
    assert.deepEqual((list.body.runs as { hour: string }[]).map((r) => r.hour), [
      new Date(H + HOUR).toISOString(),
      new Date(H).toISOString(),
    ]);

    // The ends of a range may come in either order: both are included.
    const reversed = await post({ from: "2026-11-28T11", to: "2026-11-28T10" });
    assert.equal(reversed.status, 202);
    assert.equal((await reversed.json()).runIds.length, 2);
    await env.batch.idle();

    // Another process holds hour H+1: the same refusal the scheduler gets.
    await env.db.query(
      `INSERT INTO batch_runs (hour, trigger, status, started_at, lease_until)
       VALUES ($1::timestamp, 'manual', 'running', now(), now() + interval '5 minutes')`,
      [new Date(H + HOUR)],
    );
    const busy = await post({ hour: "2026-11-28T11" });
    assert.equal(busy.status, 409);
    assert.match((await busy.json()).error, /hour 2026-11-28T11 is already running/);

    assert.equal((await getJson(app, "/api/v1/batch/runs/999999")).status, 404);
    const bad: [unknown, RegExp][] = [
      ["{not json", /^body: expected JSON/],
      [[1], /^body: expected a JSON object/],
      [{ hour: "tomorrow" }, /^hour "tomorrow" is not a UTC hour/],
      [{ hour: 10 }, /^hour: expected a string/],
      [{ from: "2026-11-28T10" }, /^to: missing/],
      [{}, /^hour: missing/],
      [{ hour: "2026-11-28T10", to: "2026-11-28T11" }, /^hour: give either/],
      [{ hour: "2026-11-28T10", at: 1 }, /^body: unexpected field "at"/],
    ];
    for (const [body, message] of bad) {
      const r = await post(body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match((await r.json()).error, message);
    }
    // What JSON Schema cannot state is not a malformed body: an hour not over yet
    // is a 409 (later); a range's ends may come in either order (above).
    const open = await post({ hour: "2026-11-28T13" });
    assert.equal(open.status, 409);
    assert.match((await open.json()).error, /^hour: 2026-11-28T13 has not ended yet/);
    assert.equal((await getJson(app, "/api/v1/batch/runs/abc")).status, 400);
    assert.equal((await getJson(app, "/api/v1/batch/runs?limit=-1")).status, 400);
  } finally {
    await env.done();
  }
});

Deno.test("mutating routes: bearer token when configured (401), else loopback only (403)", async () => {
  const env = await apiEnv({ token: "tok-123", speedData: false });
  try {
    const withToken = env.app();
    const post = (app: typeof withToken, headers: Record<string, string>, info: unknown) =>
      app.request("/api/v1/batch/runs", {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: JSON.stringify({ hour: "2026-11-28T10" }),
      }, info);
    assert.equal((await post(withToken, {}, LOOPBACK)).status, 401);
    const wrong = await post(withToken, { authorization: "Bearer nope" }, REMOTE);
    assert.equal(wrong.status, 401);
    assert.deepEqual(await wrong.json(), { error: "Authorization: wrong token" });
    const ok = await post(withToken, { authorization: "Bearer tok-123" }, REMOTE);
    assert.equal(ok.status, 202);

    const { apiTestPlan } = await import("../_support/api.ts");
    const open = env.app({ plan: apiTestPlan({ lakeUri: "file:///tmp/unused" }) });
    assert.equal((await post(open, {}, REMOTE)).status, 403);
    assert.equal((await post(open, {}, undefined)).status, 403); // no connection info: remote
    const ipv6 = { remoteAddr: { hostname: "::1", port: 1, transport: "tcp" } };
    // Loopback passes the guard; the hour is busy or queued, never refused as forbidden.
    assert.ok([202, 409].includes((await post(open, {}, ipv6)).status));
    // Reads need nothing.
    assert.equal((await open.request("/api/v1/metrics", {}, REMOTE)).status, 200);
  } finally {
    await env.done();
  }
});

Deno.test("isLoopback() knows 127/8, ::1 and mapped IPv4, nothing else", () => {
  for (const a of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "[::1]"]) {
    assert.ok(isLoopback(a), a);
  }
  for (const a of [undefined, "", "10.0.0.1", "::ffff:10.0.0.1", "128.0.0.1", "localhost"]) {
    assert.ok(!isLoopback(a), String(a));
  }
});

/** Minimal Prometheus text parser: throws on any line it does not understand. */
function parsePrometheus(text: string) {
  const help = new Set<string>();
  const types = new Map<string, string>();
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  const sampleRe = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/y;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$/.exec(line))) {
      help.add(m[1]);
      continue;
    }
    if (
      (m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(
        line,
      ))
    ) {
      assert.ok(help.has(m[1]), `TYPE before HELP for ${m[1]}`);
      types.set(m[1], m[2]);
      continue;
    }
    m = sampleRe.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const [, name, labelText = "", value] = m;
    const base = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(base), `sample before its TYPE: ${line}`);
    const labels: Record<string, string> = {};
    labelRe.lastIndex = 0;
    while (labelRe.lastIndex < labelText.length) {
      const l = labelRe.exec(labelText);
      assert.ok(l, `bad labels in: ${line}`);
      labels[l[1]] = l[2];
    }
    const v = value === "+Inf" ? Infinity : Number(value);
    assert.ok(!Number.isNaN(v), `bad value in: ${line}`);
    samples.push({ name, labels, value: v });
  }
  return { types, samples };
}

Deno.test("/metrics is valid Prometheus text with API request metrics and speed gauges", async () => {
  const env = await apiEnv({ speedData: false });
  try {
    const app = env.app({ speed: { status: () => speedStatus() }, source });
    await env.batch.runHour(H, "manual");
    await getJson(app, "/health");
    await getJson(app, "/api/v1/metrics/nope/series");
    await getJson(app, "/no/such/path");
    const res = await app.request("/metrics", {}, LOOPBACK);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const { types, samples } = parsePrometheus(await res.text());
    assert.equal(types.get("api_requests_total"), "counter");
    assert.equal(types.get("api_request_duration_seconds"), "histogram");
    const find = (name: string, labels: Record<string, string>) =>
      samples.find((s) =>
        s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
      );
    assert.equal(find("api_requests_total", { route: "/health", status: "200" })?.value, 1);
    assert.equal(
      find("api_requests_total", { route: "/api/v1/metrics/:metric/series", status: "404" })
        ?.value,
      1,
    );
    assert.equal(find("api_requests_total", { route: "unmatched", status: "404" })?.value, 1);
    assert.equal(
      find("api_request_duration_seconds_count", { route: "/health", method: "GET" })?.value,
      1,
    );
    assert.equal(find("speed_consumer_lag", { partition: "0" })?.value, 7);
    assert.equal(
      find("speed_watermark_seconds", { partition: "0" })?.value,
      (H + 2 * HOUR - 15_000) / 1000,
    );
    assert.equal(find("batch_last_completed_hour_seconds", {})?.value, H / 1000);
  } finally {
    await env.done();
  }
});

Deno.test("/openapi.json documents exactly the routes Hono serves", async () => {
  const env = await apiEnv({ speedData: false });
  try {
    const app = env.app();
    const r = await getJson(app, "/openapi.json");
    assert.equal(r.status, 200);
    assert.equal(r.body.openapi, "3.1.0");
    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(r.body.paths as Record<string, object>)) {
      for (const method of Object.keys(ops)) documented.add(`${method.toUpperCase()} ${path}`);
    }
    const served = new Set(
      app.routes.filter((x) => x.method !== "ALL").map((x) =>
        `${x.method} ${x.path.replace(/:([A-Za-z_]\w*)/g, "{$1}")}`
      ),
    );
    assert.deepEqual([...documented].sort(), [...served].sort());
    for (
      const route of [
        "GET /health",
        "GET /ready",
        "GET /metrics",
        "GET /openapi.json",
        "GET /api/v1/metrics/{metric}/series",
        "GET /api/v1/metrics/{metric}/top",
        "GET /api/v1/quota/breaches",
        "GET /api/v1/reconciliation",
        "GET /api/v1/dead-letters",
        "GET /api/v1/config",
        "GET /api/v1/metrics",
        "POST /api/v1/batch/runs",
        "GET /api/v1/batch/runs/{id}",
        "GET /api/v1/batch/runs",
      ]
    ) assert.ok(served.has(route), route);
    // Every path parameter is declared.
    const paths = r.body.paths as Record<
      string,
      Record<string, { parameters?: { name: string; in: string }[] }>
    >;
    for (const [path, ops] of Object.entries(paths)) {
      const names = [...path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]);
      for (const op of Object.values(ops)) {
        for (const n of names) {
          assert.ok(op.parameters?.some((p) => p.name === n && p.in === "path"), `${path} ${n}`);
        }
      }
    }
  } finally {
    await env.done();
  }
});
