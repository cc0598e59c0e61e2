/**
 * The linter names each kind of mistake precisely: position, path, kind and
 * message, from fixtures under testdata/config/ (each otherwise valid, so the
 * expected list is the whole answer).
 */

import assert from "node:assert/strict";
import { lintYaml, type Problem } from "../../src/config/mod.ts";

const DIR = new URL("../testdata/config/", import.meta.url);

function lintFixture(name: string, env: Record<string, string> = {}): Problem[] {
  return lintYaml(Deno.readTextFileSync(new URL(name, DIR)), name, env);
}

type Expected = Omit<Problem, "file">;

const CASES: { name: string; file: string; expected: Expected[] }[] = [
  {
    name: "an unknown key, and the required key it misspells",
    file: "unknown_key.yaml",
    expected: [
      {
        line: 6,
        col: 7,
        path: "speed.metrics[3].group_by",
        kind: "missing",
        message: 'missing required field "group_by"',
      },
      {
        line: 7,
        col: 7,
        path: "speed.metrics[3].grup_by",
        kind: "unknown_key",
        message:
          'unknown key "grup_by" (expected one of: name, group_by, aggregation, field, filter, description)',
      },
    ],
  },
  {
    name: "wrong types",
    file: "wrong_type.yaml",
    expected: [
      {
        line: 2,
        col: 9,
        path: "api.port",
        kind: "type",
        message: 'expected an integer, got "eighty"',
      },
      {
        line: 4,
        col: 12,
        path: "speed.metrics",
        kind: "type",
        message: "expected a list, got a map",
      },
    ],
  },
  {
    name: "a duration without a unit suffix",
    file: "bad_duration.yaml",
    expected: [{
      line: 2,
      col: 11,
      path: "speed.window",
      kind: "invalid",
      message: 'expected a duration like "250ms", "15s", "5m" or "1h", got "5 minutes"',
    }],
  },
  {
    name: "a metric name with SQL in it",
    file: "sql_identifier.yaml",
    expected: [{
      line: 6,
      col: 13,
      path: "speed.metrics[3].name",
      kind: "invalid",
      message:
        'invalid identifier "x; DROP TABLE bytes" (expected a lowercase letter, then up to ' +
        '62 lowercase letters, digits or "_": ^[a-z][a-z0-9_]{0,62}$)',
    }],
  },
  {
    name: "an unknown group_by field",
    file: "unknown_group_by.yaml",
    expected: [{
      line: 7,
      col: 23,
      path: "speed.metrics[3].group_by[1]",
      kind: "invalid",
      message: 'unknown value "device" (expected one of: bytes, timestamp, app, id, antenna_id)',
    }],
  },
  {
    name: "a joined field in a speed metric",
    file: "joined_in_speed.yaml",
    expected: [{
      line: 7,
      col: 17,
      path: "speed.metrics[3].group_by[0]",
      kind: "invalid",
      message: '"email" is joined from user metadata, which only batch metrics can use ' +
        "(expected one of: bytes, timestamp, app, id, antenna_id)",
    }],
  },
  {
    name: "duplicate metric names",
    file: "duplicate_names.yaml",
    expected: [{
      line: 6,
      col: 15,
      path: "speed.metrics[3].name",
      kind: "invalid",
      message: 'duplicate metric name "app_bytes_total" (first defined at speed.metrics[2])',
    }],
  },
  {
    name: "reconcile_with naming no speed metric",
    file: "bad_reconcile.yaml",
    expected: [{
      line: 5,
      col: 23,
      path: "batch.metrics[0].reconcile_with",
      kind: "reference",
      message: 'unknown speed metric "apps_total" ' +
        "(expected one of: antenna_bytes_total, user_bytes_total, app_bytes_total)",
    }],
  },
  {
    name: "unset environment variables without default",
    file: "unset_env.yaml",
    expected: [
      {
        line: 2,
        col: 8,
        path: "database.url",
        kind: "env",
        message:
          "environment variable PG_URL is not set (set it, or give a default: ${PG_URL:-value})",
      },
      {
        // Inside a quoted scalar, after a variable that has a default: the column is the `${`.
        line: 4,
        col: 28,
        path: "api.token",
        kind: "env",
        message:
          "environment variable SECRET is not set (set it, or give a default: ${SECRET:-value})",
      },
    ],
  },
];

for (const c of CASES) {
  Deno.test(`lintYaml() reports ${c.name}`, () => {
    const got = lintFixture(c.file);
    assert.deepEqual(got, c.expected.map((e) => ({ file: c.file, ...e })));
  });
}

Deno.test("lintYaml() reports a YAML syntax error with its position", () => {
  const got = lintFixture("syntax.yaml");
  assert.ok(got.length >= 1);
  for (const p of got) assert.equal(p.kind, "syntax");
  assert.deepEqual({ line: got[0].line, col: got[0].col, path: got[0].path }, {
    line: 2,
    col: 11,
    path: "",
  });
  assert.match(got[0].message, /compact mappings/);
});

Deno.test("lintYaml() reports every problem of a file at once, in file order", () => {
  const got = lintFixture("many.yaml").map((p) => `${p.line}:${p.col} ${p.kind} ${p.path}`);
  assert.deepEqual(got, [
    "3:9 invalid source.kind",
    "5:14 invalid source.kafka.brokers[0]",
    "7:15 invalid schema.max_future",
    "9:11 invalid speed.window",
    "10:21 invalid speed.allowed_lateness",
    "14:13 invalid speed.metrics[1].name",
    "17:14 invalid speed.metrics[1].field",
    "19:8 invalid lake.uri",
    "21:16 invalid lake.roll.max_bytes",
    "25:25 invalid batch.metrics[0].group_by[1]",
    "26:23 reference batch.metrics[0].reconcile_with",
    "28:3 unknown_key api.prot",
  ]);
});

Deno.test("lintYaml() accepts the values an env variable supplies as text", () => {
  const text = "api:\n  port: ${P}\n  enabled: ${E}\nsource:\n  simulator:\n    rate: ${R}\n";
  assert.deepEqual(lintYaml(text, "t.yaml", { P: "9000", E: "false", R: "2.5" }), []);
  const bad = lintYaml(text, "t.yaml", { P: "ninety", E: "maybe", R: "2.5" });
  assert.deepEqual(bad.map((p) => [p.path, p.message]), [
    ["api.port", 'expected an integer, got "ninety"'],
    ["api.enabled", 'expected true or false, got "maybe"'],
  ]);
});

Deno.test("lintYaml() keeps literal text typed: a quoted number is not a port", () => {
  const got = lintYaml('api:\n  port: "8080"\n', "t.yaml", {});
  assert.equal(got.length, 1);
  assert.equal(got[0].kind, "type");
});

Deno.test("lintYaml() checks cross-field rules that one field cannot", () => {
  const rules: [string, string, string][] = [
    ["speed:\n  window: 7m\n", "speed.window", "divide one hour"],
    ["speed:\n  window: 1m\n  allowed_lateness: 1m\n", "speed.allowed_lateness", "shorter"],
    ["batch:\n  grace: 1s\n", "batch.grace", "allowed_lateness"],
    [
      "source:\n  kafka:\n    dead_letter_topic: devices\n",
      "source.kafka.dead_letter_topic",
      "differ",
    ],
    [
      "source:\n  simulator:\n    late_share: 0.6\n    malformed_share: 0.5\n",
      "source.simulator.malformed_share",
      "at most 1",
    ],
    ["database:\n  embedded:\n    port: 8080\n", "api.port", "database.embedded.port"],
    [
      "speed:\n  metrics:\n    - { name: antenna_bytes_total, group_by: antenna_id, filter: { in: { bytes: [big] } } }\n    - { name: user_bytes_total, group_by: id }\n    - { name: app_bytes_total, group_by: app }\n",
      "speed.metrics[0].filter.in.bytes[0]",
      "expected a number",
    ],
  ];
  for (const [text, path, fragment] of rules) {
    const got = lintYaml(text, "t.yaml", {});
    assert.equal(got.length, 1, `${path}: ${JSON.stringify(got)}`);
    assert.equal(got[0].path, path);
    assert.ok(got[0].message.includes(fragment), got[0].message);
  }
});

Deno.test("lintYaml() says when a rule trips over a built-in default", () => {
  const text = "speed:\n  metrics:\n    - { name: only_total, group_by: app }\n";
  const got = lintYaml(text, "t.yaml", {});
  assert.equal(got.length, 3);
  for (const p of got) {
    assert.equal(p.kind, "reference");
    assert.match(p.message, /from the built-in defaults: batch is not set in the file/);
  }
});
