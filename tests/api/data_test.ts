/**
 * The data routes under /api/v1 against real PostgreSQL with every
 * migration, speed windows in the speed layer's tables and the real batch
 * runner over a local lake: series (merged, batch, speed; 5m and 1h), the
 * merged series switching from speed to batch when an hour gets batched,
 * top-N, quota breaches, reconciliation, dead letters, config and the metric
 * list, and every 400/404 the parameters can cause.
 */
import assert from "node:assert/strict";
import { antennaId } from "../../src/simulator/mod.ts";
import { apiEnv, getJson, H, HOUR, speedKeeps, totals } from "../_support/api_env.ts";

type Point = { timestamp: string; id: string; value: number; source: string };
const A0 = antennaId(0);
const iso = (ms: number) => new Date(ms).toISOString();
const RANGE = `from=${iso(H)}&to=${iso(H + 2 * HOUR)}`;

Deno.test("series: merged switches from speed to batch for an hour once it is batched", async () => {
  const env = await apiEnv();
  try {
    const app = env.app();
    const url = `/api/v1/metrics/antenna_bytes_total/series?id=${A0}&${RANGE}`;
    const speedH = totals(env.hours[0], "antenna_id", speedKeeps).get(A0)!;
    const speedH1 = totals(env.hours[1], "antenna_id", speedKeeps).get(A0)!;
    const batchH = totals(env.hours[0], "antenna_id").get(A0)!;
    assert.ok(batchH > speedH, "the late events make the batch total larger");

    const before = await getJson(app, url);
    assert.equal(before.status, 200, before.body.error);
    assert.equal(before.body.source, "merged");
    assert.equal(before.body.granularity, "1h");
    assert.deepEqual(before.body.points, [
      { timestamp: iso(H), id: A0, value: speedH, source: "speed", final: true },
      { timestamp: iso(H + HOUR), id: A0, value: speedH1, source: "speed", final: true },
    ]);

    const run = await env.batch.runHour(H, "manual");
    assert.equal(run.status, "succeeded", run.error ?? "");

    const after = await getJson(app, url);
    assert.deepEqual(after.body.points, [
      { timestamp: iso(H), id: A0, value: batchH, source: "batch", final: true },
      { timestamp: iso(H + HOUR), id: A0, value: speedH1, source: "speed", final: true },
    ]);

    // source=batch reads bytes_hourly alone; source=speed folds the windows alone.
    const b = await getJson(app, `${url}&source=batch`);
    assert.deepEqual(b.body.points, [{
      timestamp: iso(H),
      id: A0,
      value: batchH,
      source: "batch",
      final: true,
    }]);
    const s = await getJson(app, `${url}&source=speed`);
    assert.deepEqual((s.body.points as Point[]).map((p) => [p.value, p.source]), [
      [speedH, "speed"],
      [speedH1, "speed"],
    ]);
  } finally {
    await env.done();
  }
});

Deno.test("series: 5m windows of one id, and every id without `id`", async () => {
  const env = await apiEnv();
  try {
    const app = env.app();
    const r = await getJson(
      app,
      `/api/v1/metrics/app_bytes_total/series?id=SKYPE&granularity=5m&from=${iso(H)}&to=${
        iso(H + HOUR)
      }`,
    );
    assert.equal(r.status, 200, r.body.error);
    const points = r.body.points as Point[];
    assert.equal(points.length, 12);
    assert.ok(points.every((p, i) => p.timestamp === iso(H + i * 300_000) && p.source === "speed"));
    assert.equal(
      points.reduce((n, p) => n + p.value, 0),
      totals(env.hours[0], "app", speedKeeps).get("SKYPE"),
    );

    const all = await getJson(app, `/api/v1/metrics/app_bytes_total/series?${RANGE}`);
    assert.equal(all.body.truncated, false);
    const ids = new Set((all.body.points as Point[]).map((p) => p.id));
    assert.deepEqual([...ids].sort(), ["FACEBOOK", "SKYPE", "TELEGRAM", "WHATSAPP"]);
    assert.equal((all.body.points as Point[]).length, 8);
  } finally {
    await env.done();
  }
});

Deno.test("top, quota breaches and reconciliation answer from the batch and serving tables", async () => {
  const env = await apiEnv();
  try {
    const app = env.app();
    await env.batch.runHour(H, "manual");
    await env.batch.runHour(H + HOUR, "manual");

    const top = await getJson(app, `/api/v1/metrics/antenna_bytes_total/top?${RANGE}&limit=2`);
    assert.equal(top.status, 200, top.body.error);
    const expected = [...totals(env.hours[0], "antenna_id")]
      .map(([id, v]) => [id, v + (totals(env.hours[1], "antenna_id").get(id) ?? 0)] as const)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .slice(0, 2)
      .map(([id, total]) => ({ id, total, hours: 2, batchHours: 2, speedHours: 0, final: true }));
    assert.deepEqual(top.body.top, expected);

    const q = await getJson(app, `/api/v1/quota/breaches?hour=2026-11-28T10`);
    assert.equal(q.status, 200, q.body.error);
    const breaches = q.body.breaches as { email: string; usage: number; quota: number }[];
    assert.ok(breaches.length > 0);
    assert.ok(breaches.every((b) => b.usage > b.quota && b.quota === 1_000));
    const db = await env.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM user_quota_limit WHERE timestamp = $1::timestamp",
      [new Date(H)],
    );
    assert.equal(breaches.length, db[0].n);
    const range = await getJson(app, `/api/v1/quota/breaches?${RANGE}`);
    assert.ok((range.body.breaches as unknown[]).length >= breaches.length);

    const rec = await getJson(app, `/api/v1/reconciliation?${RANGE}`);
    assert.equal(rec.status, 200, rec.body.error);
    const rows = rec.body.hours as {
      hour: string;
      metric: string;
      batchValue: number;
      speedValue: number;
      difference: number;
    }[];
    assert.equal(rows.length, 6); // 2 hours × 3 batch metrics
    const antenna = rows.find((r) => r.hour === iso(H) && r.metric === "antenna_bytes_total")!;
    const all = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    assert.equal(antenna.batchValue, all(totals(env.hours[0], "antenna_id")));
    assert.equal(antenna.speedValue, all(totals(env.hours[0], "antenna_id", speedKeeps)));
    assert.equal(antenna.difference, antenna.batchValue - antenna.speedValue);
    const one = await getJson(app, `/api/v1/reconciliation?${RANGE}&metric=app_bytes_total`);
    assert.equal((one.body.hours as unknown[]).length, 2);
  } finally {
    await env.done();
  }
});

Deno.test("dead letters are counted by reason, optionally in a range", async () => {
  const env = await apiEnv({ speedData: false });
  try {
    await env.db.query(
      `INSERT INTO dead_letters (topic, "partition", "offset", reason, detail, payload, at)
       SELECT 'devices', 0, n, CASE WHEN n < 3 THEN 'not_json' ELSE 'bad_bytes' END, 'x',
         '\\x00'::bytea, $1::timestamptz + n * interval '1 minute'
       FROM generate_series(0, 9) AS n`,
      [new Date(H)],
    );
    const app = env.app({
      speed: {
        status: () => ({
          running: true,
          sinksDown: [],
          partitions: [],
          counters: {
            consumed: 100,
            valid: 90,
            deadLetters: 10,
            lateUpdated: 0,
            lateDropped: 0,
            windowsWritten: 0,
            flushes: 0,
          },
        }),
      },
    });
    const r = await getJson(app, "/api/v1/dead-letters");
    assert.equal(r.status, 200, r.body.error);
    assert.equal(r.body.total, 10);
    assert.deepEqual(
      (r.body.reasons as { reason: string; count: number }[]).map((x) => [x.reason, x.count]),
      [["bad_bytes", 7], ["not_json", 3]],
    );
    assert.deepEqual(r.body.process, { deadLetters: 10 });
    const part = await getJson(
      app,
      `/api/v1/dead-letters?from=${iso(H)}&to=${iso(H + 2 * 60_000)}`,
    );
    assert.equal(part.body.total, 2);
  } finally {
    await env.done();
  }
});

Deno.test("config is redacted and the metric list comes from the plan", async () => {
  const env = await apiEnv({ token: "s3cret-token", speedData: false });
  try {
    const app = env.app();
    const cfg = await getJson(app, "/api/v1/config");
    assert.equal(cfg.status, 200);
    assert.equal((cfg.body.api as { token: string }).token, "***");
    assert.ok(!JSON.stringify(cfg.body).includes("s3cret-token"));

    const m = await getJson(app, "/api/v1/metrics");
    const list = m.body.metrics as { name: string; layers: string[]; groupBy: string[] }[];
    assert.deepEqual(list.map((x) => [x.name, x.layers]), [
      ["antenna_bytes_total", ["speed", "batch"]],
      ["user_bytes_total", ["speed"]],
      ["app_bytes_total", ["speed", "batch"]],
      ["email_bytes_total", ["batch"]],
    ]);
    assert.deepEqual(list.find((x) => x.name === "email_bytes_total")!.groupBy, ["email"]);
  } finally {
    await env.done();
  }
});

Deno.test("bad parameters are 400 naming the parameter; unknown metric 404; a valid id without rows is empty", async () => {
  const env = await apiEnv();
  try {
    const app = env.app();
    const S = "/api/v1/metrics/antenna_bytes_total/series";
    const cases: [string, number, RegExp][] = [
      [`${S}?from=yesterday`, 400, /^from: expected an ISO-8601 time, got "yesterday"$/],
      [`${S}?to=2026-13-01`, 400, /^to: expected an ISO-8601 time/],
      [`${S}?from=2026-02-31T00:00Z`, 400, /^from: /],
      [`${S}?from=2026-02-29`, 400, /^from: /],
      [`${S}?from=%202026-01-01`, 400, /^from: /],
      [`${S}?from=`, 400, /^from: /],
      [`${S}?id=`, 400, /^id: expected 1 to 512 characters/],
      [`${S}?id=a%00b`, 400, /^id: /],
      [`${S}?granularity=1m`, 400, /^granularity: expected one of 5m, 1h, got "1m"$/],
      [`${S}?source=lake`, 400, /^source: expected one of merged, batch, speed/],
      // Series that do not exist for this metric: 404 like an unknown metric.
      [`${S}?granularity=5m&source=batch`, 404, /^granularity: 5m needs/],
      [`/api/v1/metrics/email_bytes_total/series?granularity=5m`, 404, /^granularity: /],
      [`/api/v1/metrics/user_bytes_total/series?source=batch`, 404, /^source: metric/],
      [`/api/v1/metrics/nope/series`, 404, /^metric: unknown metric "nope"/],
      [`/api/v1/metrics/nope/top`, 404, /^metric: /],
      [`/api/v1/metrics/antenna_bytes_total/top?limit=0`, 400, /^limit: expected an integer/],
      [`/api/v1/metrics/antenna_bytes_total/top?limit=ten`, 400, /^limit: /],
      [`/api/v1/metrics/antenna_bytes_total/top?limit=%205`, 400, /^limit: /],
      [`/api/v1/quota/breaches?hour=10am`, 400, /^hour: expected an ISO-8601 time/],
      [`/api/v1/quota/breaches?hour=`, 400, /^hour: /],
      [`/api/v1/quota/breaches?email=`, 400, /^email: /],
      [`/api/v1/reconciliation?metric=nope`, 404, /^metric: /],
      [`/api/v1/dead-letters?from=soon`, 400, /^from: /],
      [`/api/v1/nothing-here`, 404, /^no route for GET/],
    ];
    for (const [url, status, message] of cases) {
      const r = await getJson(app, url);
      assert.equal(r.status, status, `${url}: ${r.body.error}`);
      assert.match(r.body.error ?? "", message, url);
    }
    // A valid id with no rows (yet, or in the range) is an empty series, not a 404.
    for (
      const url of [
        `${S}?id=no-such-antenna&${RANGE}`,
        `${S}?id=no-such-antenna&${RANGE}&granularity=5m`,
        `${S}?id=${A0}&from=2026-01-01&to=2026-01-02`,
      ]
    ) {
      const empty = await getJson(app, url);
      assert.equal(empty.status, 200, `${url}: ${empty.body.error}`);
      assert.deepEqual(empty.body.points, [], url);
    }
  } finally {
    await env.done();
  }
});

Deno.test("ranges JSON Schema cannot bound are answered: to before from is empty, a long range is cut, hour with from/to is their intersection", async () => {
  const env = await apiEnv();
  try {
    const app = env.app();
    await env.batch.runHour(H, "manual");
    const S = "/api/v1/metrics/antenna_bytes_total/series";
    const reversed = await getJson(app, `${S}?from=${iso(H + HOUR)}&to=${iso(H)}`);
    assert.equal(reversed.status, 200, reversed.body.error);
    assert.deepEqual(reversed.body.points, []);
    assert.equal(reversed.body.from, reversed.body.to);

    // 5m ranges are at most 31 days: the answer starts 31 days before `to`.
    const to = H + 2 * HOUR;
    const long = await getJson(app, `${S}?granularity=5m&from=2026-01-01&to=${iso(to)}&id=${A0}`);
    assert.equal(long.status, 200, long.body.error);
    assert.equal(long.body.from, iso(to - 31 * 24 * HOUR));
    assert.ok((long.body.points as unknown[]).length > 0);

    const B = "/api/v1/quota/breaches";
    const hour = await getJson(app, `${B}?hour=2026-11-28T10`);
    const both = await getJson(
      app,
      `${B}?hour=2026-11-28T10&from=${iso(H)}&to=${iso(H + 2 * HOUR)}`,
    );
    assert.equal(both.status, 200, both.body.error);
    assert.deepEqual(both.body, hour.body);
    const outside = await getJson(app, `${B}?hour=2026-11-28T10&from=${iso(H + HOUR)}`);
    assert.equal(outside.status, 200, outside.body.error);
    assert.deepEqual(outside.body.breaches, []);
  } finally {
    await env.done();
  }
});
