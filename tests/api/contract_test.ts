/**
 * The contract in-process, without a database: undeclared methods are 405
 * with `Allow`; the document's security alternatives follow the token; the
 * alert stream's events have a schema; and each parameter's published schema
 * accepts exactly what its check accepts (the same definition), tested on
 * tables of values synchronously.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/api/mod.ts";
import {
  choiceParam,
  FROM_PARAM,
  HOUR_PATTERN,
  intParam,
  type Param,
  parseHourText,
  TEXT_PATTERN,
  textParam,
  TIME_PATTERN,
} from "../../src/api/params.ts";
import type { Db } from "../../src/db/mod.ts";
import { Registry } from "../../src/metrics.ts";
import { apiTestPlan } from "../_support/api.ts";
import { LOOPBACK } from "../_support/api_env.ts";

// Routes under test here answer before any query; a query would be a bug.
const NO_DB = new Proxy({}, {
  get() {
    throw new Error("this test must not touch the database");
  },
}) as Db;

function app(token?: string) {
  const plan = apiTestPlan({ lakeUri: "file:///nonexistent", token });
  return createApp({ plan, db: NO_DB, registry: new Registry() });
}

Deno.test("createApp() answers an undeclared method with 405 and Allow, an unknown path with 404", async () => {
  const a = app();
  const cases: [string, string, string][] = [
    ["DELETE", "/health", "GET, HEAD"],
    ["POST", "/api/v1/metrics/antenna_bytes_total/series", "GET, HEAD"],
    ["PUT", "/api/v1/batch/runs", "POST, GET, HEAD"],
    ["PATCH", "/api/v1/batch/runs/12", "GET, HEAD"],
    ["OPTIONS", "/openapi.json", "GET, HEAD"],
  ];
  for (const [method, path, allow] of cases) {
    const r = await a.request(path, { method }, LOOPBACK);
    assert.equal(r.status, 405, `${method} ${path}`);
    assert.equal(r.headers.get("Allow"), allow, `${method} ${path}`);
    assert.match((await r.json()).error, new RegExp(`^method ${method} is not allowed`));
  }
  const head = await a.request("/health", { method: "HEAD" }, LOOPBACK);
  assert.equal(head.status, 200);
  const none = await a.request("/nothing", { method: "DELETE" }, LOOPBACK);
  assert.equal(none.status, 404);
});

Deno.test("openApiDocument() states the write guard's rule, the stream's events and the plan's metrics", async () => {
  const doc = async (token?: string) =>
    await (await app(token).request("/openapi.json", {}, LOOPBACK)).json();
  const open = await doc();
  const post = open.paths["/api/v1/batch/runs"].post;
  assert.deepEqual(post.security, [{ bearer: [] }, {}], "no token: loopback without credentials");
  assert.ok(post.responses["403"]);
  assert.equal(post.responses["401"], undefined, "no token: no 401");
  const locked = await doc("s3cret");
  assert.deepEqual(locked.paths["/api/v1/batch/runs"].post.security, [{ bearer: [] }]);
  assert.ok(locked.paths["/api/v1/batch/runs"].post.responses["401"]);
  assert.equal(locked.paths["/api/v1/batch/runs"].post.responses["403"], undefined);
  assert.equal(locked.paths["/health"].get.security, undefined);

  const stream = open.paths["/api/v1/quota/alerts/stream"].get.responses["200"].content;
  const item = stream["text/event-stream"].itemSchema;
  assert.deepEqual(item.required, ["event", "data"]);
  assert.deepEqual(item.properties.event, { const: "quota_alert" });
  assert.equal(item.properties.data.contentMediaType, "application/json");
  assert.ok(item.properties.data.contentSchema.required.includes("threshold"));

  const series = open.paths["/api/v1/metrics/{metric}/series"].get.parameters;
  assert.deepEqual(series.find((p: { name: string }) => p.name === "metric").schema.enum, [
    "antenna_bytes_total",
    "user_bytes_total",
    "app_bytes_total",
    "email_bytes_total",
  ]);
  const from = series.find((p: { name: string }) => p.name === "from");
  assert.equal(from.schema.pattern, TIME_PATTERN);
});

/** Whether `read` accepts `text` (no UserError). */
function accepts<T>(p: Param<T>, text: string): boolean {
  try {
    p.read(text);
    return true;
  } catch {
    return false;
  }
}

Deno.test("TIME_PATTERN and parseTime() accept the same texts", () => {
  const re = new RegExp(TIME_PATTERN);
  const table: [string, boolean][] = [
    ["2026-11-28", true],
    ["2026-11-28T10", true],
    ["2026-11-28t10:15", true],
    ["2026-11-28 10:15:30", true],
    ["2026-11-28T10:15:30.123456789Z", true],
    ["2026-11-28T10:15+0130", true],
    ["2026-11-28T10:15:00-05:00", true],
    ["2024-02-29", true],
    ["2000-02-29", true],
    ["1000-01-01", true],
    ["9999-12-31T23:59:59z", true],
    ["2026-02-29", false],
    ["1900-02-29", false],
    ["2026-04-31", false],
    ["2026-13-01", false],
    ["2026-00-10", false],
    ["0999-12-31", false],
    ["2026-11-28T24", false],
    ["2026-11-28T10:60", false],
    ["2026-11-28Z", false],
    [" 2026-11-28", false],
    ["2026-11-28 ", false],
    ["", false],
    ["yesterday", false],
  ];
  for (const [text, ok] of table) {
    assert.equal(re.test(text), ok, `pattern: ${JSON.stringify(text)}`);
    assert.equal(accepts(FROM_PARAM, text), ok, `check: ${JSON.stringify(text)}`);
  }
  assert.equal(FROM_PARAM.read("2026-11-28T10:15+01:00"), Date.UTC(2026, 10, 28, 9, 15));
  assert.equal(FROM_PARAM.read("2026-11-28T10:15:30.5"), Date.UTC(2026, 10, 28, 10, 15, 30, 500));
});

Deno.test("HOUR_PATTERN and parseHourText() accept the same whole hours", () => {
  const re = new RegExp(HOUR_PATTERN);
  const table: [string, boolean][] = [
    ["2026-11-28T10", true],
    ["2026-11-28 10", true],
    ["2026-11-28T10:00", true],
    ["2026-11-28T10:00:00Z", true],
    ["2026-11-28T10:30", false],
    ["2026-11-28", false],
    ["2026-02-30T10", false],
    ["2026-11-28T10 ", false],
  ];
  for (const [text, ok] of table) {
    assert.equal(re.test(text), ok, `pattern: ${JSON.stringify(text)}`);
    let parsed = true;
    try {
      parseHourText("hour", text);
    } catch {
      parsed = false;
    }
    assert.equal(parsed, ok, `check: ${JSON.stringify(text)}`);
  }
});

Deno.test("textParam(), intParam() and choiceParam() check what their schemas state", () => {
  const id = textParam("id", "An id.", 4);
  assert.deepEqual(id.schema, {
    type: "string",
    minLength: 1,
    maxLength: 4,
    pattern: TEXT_PATTERN,
  });
  for (
    const [text, ok] of [["a", true], ["abcd", true], ["😀😀😀😀", true], ["", false], [
      "abcde",
      false,
    ], ["a\u0000", false]] as const
  ) {
    assert.equal(accepts(id, text), ok, JSON.stringify(text));
    assert.equal(new RegExp(TEXT_PATTERN, "u").test(text) && [...text].length <= 4, ok);
  }
  const n = intParam("limit", "A limit.", 1, 10, 5);
  assert.deepEqual(n.schema, { type: "integer", minimum: 1, maximum: 10, default: 5 });
  assert.equal(n.read(undefined), 5);
  for (
    const [text, ok] of [
      ["1", true],
      ["10", true],
      ["0", false],
      ["11", false],
      ["1.5", false],
      [
        " 2",
        false,
      ],
      ["two", false],
      ["", false],
    ] as const
  ) {
    assert.equal(accepts(n, text), ok, JSON.stringify(text));
  }
  const c = choiceParam("g", "A choice.", ["5m", "1h"], "1h");
  assert.deepEqual(c.schema, { type: "string", enum: ["5m", "1h"], default: "1h" });
  assert.equal(accepts(c, "5m"), true);
  assert.equal(accepts(c, "5M"), false);
});
