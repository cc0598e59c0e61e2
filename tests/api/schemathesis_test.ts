/**
 * The API against its own contract: schemathesis reads `/openapi.json` from a
 * real `main.ts start` (the simulator flowing into the stack's PostgreSQL, the
 * batch layer and quota alerts on, an API token set so the write guard's 401
 * is exercised) and runs every check on every operation, mutating ones
 * included. Any finding fails the test with schemathesis' report.
 */
import assert from "node:assert/strict";
import { freshDatabase } from "../_support/services.ts";
import { runSchemathesis } from "../_support/schemathesis.ts";
import { spawnStart, until } from "../_support/start_process.ts";

const PORT = 18200;
const TOKEN = "schemathesis-test-token";
/** Examples per operation and phase: the whole run stays near a minute and a half here. */
const MAX_EXAMPLES = 10;

// The stream never ends: schemathesis reads it for half a second (or 5 events),
// which is enough to validate the catch-up's events against their schema.
const CONFIG = `[[operations]]
include-path = "/api/v1/quota/alerts/stream"
request-timeout = 0.5
max-stream-events = 5
`;

Deno.test({
  name: "schemathesis finds nothing: the served API keeps its OpenAPI document (--checks all)",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const fresh = await freshDatabase("api_fuzz");
    const dir = await Deno.makeTempDir({ prefix: "api_fuzz_" });
    await Deno.writeTextFile(`${dir}/schemathesis.toml`, CONFIG);
    await Deno.writeTextFile(
      `${dir}/pipeline.yaml`,
      `source:
  kind: simulator
  simulator: { rate: 300, devices: 20, seed: 3 }
speed:
  flush_interval: 200ms
lake:
  uri: file://${dir}/lake
  roll: { max_age: 1s }
  compaction: { enabled: false }
database:
  url: ${fresh.url}
  allow_simulator_writes: true
api:
  port: ${PORT}
  token: ${TOKEN}
`,
    );
    const start = spawnStart(`${dir}/pipeline.yaml`, `${dir}/start.log`, PORT);
    try {
      // Data flowing: the low-quota simulator users have raised alerts of this hour,
      // so the stream's catch-up has events for schemathesis to check.
      await until("a quota alert", async () => {
        const r = await start.get("/api/v1/quota/alerts");
        return (r.body.alerts as unknown[] | undefined)?.length ? true : undefined;
      }, 120_000);
      const api = `http://127.0.0.1:${PORT}`;
      const { code, output } = await runSchemathesis([
        "--config-file",
        `${dir}/schemathesis.toml`,
        "run",
        `${api}/openapi.json`,
        "--url",
        api,
        "--checks",
        "all",
        "--max-examples",
        String(MAX_EXAMPLES),
        "--header",
        `Authorization: Bearer ${TOKEN}`,
        "--request-timeout",
        "10",
      ], dir);
      assert.equal(code, 0, `schemathesis found problems:\n${output}\n--- start:\n${start.tail()}`);
      // Every generated case passed ("N generated, N passed"); a warning such as
      // "missing test data" (a route whose ids the fuzzer did not find) is no finding.
      assert.match(output, /(\d+) generated, \1 passed/, output);
      assert.doesNotMatch(output, /0 selected/, output);
    } finally {
      await start.stop();
      await fresh.drop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
