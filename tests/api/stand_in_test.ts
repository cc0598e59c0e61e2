/**
 * standInOf(): which speed metric answers a batch-only metric's hours before
 * they are batched. Pure: plans from YAML, no services.
 */
import assert from "node:assert/strict";
import { planFromYaml } from "../../src/config/mod.ts";
import { standInOf } from "../../src/api/_serving_sql.ts";

const SPEED = `
    - { name: user_bytes_total, group_by: id, aggregation: sum, field: bytes }
    - { name: antenna_bytes_total, group_by: antenna_id, aggregation: sum, field: bytes }
    - { name: skype_bytes, group_by: id, aggregation: sum, field: bytes,
        filter: { in: { app: [SKYPE] } } }
    - { name: user_events, group_by: id, aggregation: count }`;

const plan = (batchMetrics: string, policy = "unknown_id") =>
  planFromYaml(
    `lake: { uri: "file:///tmp/stand_in_test" }
speed:
  metrics:${SPEED}
batch:
  unknown_device: { policy: ${policy}, id: nobody }
  metrics:
${batchMetrics}`,
    { env: {} },
  );

Deno.test("standInOf() picks the reconcile_with metric only when it counts the same thing", () => {
  const cases: [string, string, string, ReturnType<typeof standInOf>][] = [
    [
      "per email from per device, unknown devices under the policy's id",
      "    - { name: email_bytes_total, group_by: email, reconcile_with: user_bytes_total }",
      "unknown_id",
      { type: "user_bytes_total", user: "email", unknownId: "nobody" },
    ],
    [
      "drop policy: unknown devices left out",
      "    - { name: email_bytes_total, group_by: email, reconcile_with: user_bytes_total }",
      "drop",
      { type: "user_bytes_total", user: "email" },
    ],
    [
      "per name",
      "    - { name: name_bytes, group_by: name, reconcile_with: user_bytes_total }",
      "unknown_id",
      { type: "user_bytes_total", user: "name", unknownId: "nobody" },
    ],
    [
      "same key under another name",
      "    - { name: per_antenna, group_by: antenna_id, reconcile_with: antenna_bytes_total }",
      "unknown_id",
      { type: "antenna_bytes_total" },
    ],
    [
      "a speed metric of the same name serves itself",
      "    - { name: antenna_bytes_total, group_by: antenna_id, reconcile_with: antenna_bytes_total }",
      "unknown_id",
      undefined,
    ],
    [
      "no reconcile_with",
      "    - { name: email_bytes_total, group_by: email }",
      "unknown_id",
      undefined,
    ],
    [
      "another key (per email from per antenna)",
      "    - { name: email_bytes_total, group_by: email, reconcile_with: antenna_bytes_total }",
      "unknown_id",
      undefined,
    ],
    [
      "another filter",
      "    - { name: email_bytes_total, group_by: email, reconcile_with: skype_bytes }",
      "unknown_id",
      undefined,
    ],
  ];
  for (const [what, metrics, policy, expected] of cases) {
    const p = plan(metrics, policy);
    assert.deepEqual(standInOf(p, p.batch.metrics[0].name), expected, what);
  }
});
