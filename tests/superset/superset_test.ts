/**
 * The Superset dashboard, end to end with real services: a fresh database on
 * the stack PostgreSQL, filled by a populate step, the project's Superset
 * (installed from PyPI into .state/superset and started if needed; left
 * running), the bundle imported over REST, every chart's data fetched through
 * the chart data API, and the dashboard opened in headless Chromium, where
 * every chart must draw data and show no error. The screenshot goes to
 * .state/test-results/dashboard.png (copy it over docs/dashboard.png to
 * refresh the README's picture).
 *
 * The data come from a real run of the pipeline: simulated hours through
 * Kafka, the speed layer, the lake and the batch layer (older hours batched,
 * the latest ones speed-only), so every view the dashboard reads is real.
 * Then one window of the current hour gets a partial row that no watermark has
 * passed, as a flush of a window still filling writes it: the 5-minute chart
 * must show that open window with its value.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { freshDatabase } from "../_support/services.ts";
import { unzipSync } from "fflate";
import { parse } from "yaml";
import { populateFromPipeline } from "../_support/pipeline_fixture.ts";
import { verifyDashboard } from "../../superset/verify.ts";
import { buildBundle, BUNDLE_ROOT, toSqlalchemyUri } from "../../superset/build_bundle.ts";
import { UserError } from "../../src/errors.ts";
import { openDb } from "../../src/db/mod.ts";
import { antennaId } from "../../src/simulator/mod.ts";
import { SupersetClient } from "../../superset/client.ts";
import { adminCredentials } from "../../superset/install.ts";
import { baseUrl } from "../../superset/_paths.ts";

const FIVE_MIN = 300_000;
/** The open window: the current one, in an hour the pipeline run left empty. */
const OPEN_WINDOW = Math.floor(Date.now() / FIVE_MIN) * FIVE_MIN;
const OPEN_BYTES = 987_654;

/**
 * A partial row of the open window on partition 0, as the speed layer's flush
 * writes one while the window fills; checks that no watermark passed it.
 */
async function addOpenWindow(url: string): Promise<void> {
  const db = await openDb({ url });
  try {
    await db.query(
      `INSERT INTO speed_partials (type, "timestamp", id, "partition", value, window_end)
       VALUES ('antenna_bytes_total', $1::timestamp, $2, 0, $3, $4::timestamp)`,
      [new Date(OPEN_WINDOW), antennaId(0), OPEN_BYTES, new Date(OPEN_WINDOW + FIVE_MIN)],
    );
    const rows = await db.query<{ value: number; final: boolean }>(
      `SELECT value, final FROM serving_5m_live WHERE type = 'antenna_bytes_total'
         AND timestamp = $1::timestamp`,
      [new Date(OPEN_WINDOW)],
    );
    assert.deepEqual(rows.map((r) => [Number(r.value), r.final]), [[OPEN_BYTES, false]]);
  } finally {
    await db.close();
  }
}

const POPULATE = async (url: string) => {
  const summary = await populateFromPipeline(url, {
    hours: 4,
    batchedHours: 3,
    eventsPerSecond: 40,
  });
  await addOpenWindow(url);
  return summary;
};
// Under .state/ (ignored): a test run must not rewrite the README's docs/dashboard.png.
const SCREENSHOT = fileURLToPath(
  new URL("../../.state/test-results/dashboard.png", import.meta.url),
);

Deno.test({
  name: "Superset dashboard: every chart of the bundle shows data, in the API and in Chromium",
  // playwright and the detached Superset keep handles Deno cannot attribute.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // A screenshot left by an earlier run must not pass for this one's.
    await Deno.remove(SCREENSHOT).catch(() => {});
    await Deno.mkdir(new URL("../../.state/test-results/", import.meta.url), { recursive: true });
    const db = await freshDatabase("superset");
    try {
      const report = await verifyDashboard({
        databaseUrl: db.url,
        populate: POPULATE,
        screenshotPath: SCREENSHOT,
        browserTimeoutMs: 240_000,
      });
      console.log("superset timings (ms):", JSON.stringify(report.timings));

      // The imported dashboard holds exactly the bundle's charts.
      assert.ok(report.bundleCharts.length >= 5, "the bundle declares at least five charts");
      assert.deepEqual(report.apiCharts.map((c) => c.title).sort(), report.bundleCharts);

      // Second opinion from the REST API: each chart's saved query returns rows.
      for (const c of report.apiCharts) {
        assert.ok(c.rows > 0, `chart "${c.title}" (id ${c.id}): the data API returned no rows`);
      }

      // In the browser: every chart drew something and shows no error.
      const { charts, pageErrors } = report.browser;
      assert.equal(charts.length, report.bundleCharts.length, "charts on the dashboard page");
      assert.deepEqual(charts.map((c) => c.title).sort(), report.bundleCharts);
      for (const c of charts) {
        assert.deepEqual(c.errors, [], `chart "${c.title}" shows an error`);
        assert.equal(c.loading, false, `chart "${c.title}" is still loading`);
        assert.notEqual(c.rendered, "none", `chart "${c.title}" drew nothing`);
      }
      assert.deepEqual(pageErrors, [], "error messages on the dashboard page");

      // The 5-minute chart shows the window still filling, with its value.
      const five = report.apiCharts.find((c) => c.title === "Bytes per antenna (5-minute windows)");
      assert.ok(five, "the 5-minute chart is on the dashboard");
      const admin = adminCredentials();
      const client = await SupersetClient.login(baseUrl(), admin.username, admin.password);
      const rows = (await client.chartData(five.id)).flatMap((r) => r.data);
      const isOpen = (v: unknown) =>
        v === OPEN_WINDOW || (typeof v === "string" && Date.parse(v) === OPEN_WINDOW);
      const open = rows.filter((r) => Object.values(r).some(isOpen));
      assert.equal(open.length > 0, true, `no row of the open window among ${rows.length}`);
      const drawn = open.flatMap((r) =>
        Object.values(r).filter((v) => typeof v === "number" && !isOpen(v)) as number[]
      ).reduce((a, b) => a + b, 0);
      assert.equal(drawn, OPEN_BYTES, JSON.stringify(open));

      const png = await Deno.stat(SCREENSHOT);
      assert.ok(png.size > 50_000, `screenshot ${SCREENSHOT} is suspiciously small`);
    } finally {
      await db.drop();
    }
  },
});

Deno.test("buildBundle() writes one top-level folder with the URI and each chart's query_context", async () => {
  const files = unzipSync(
    await buildBundle({ databaseUri: "postgres://app:s3cr:et@db.example:5432/antenna" }),
  );
  const names = Object.keys(files);
  assert.ok(names.every((n) => n.startsWith(`${BUNDLE_ROOT}/`)), names.join(", "));
  const text = (n: string) => new TextDecoder().decode(files[`${BUNDLE_ROOT}/${n}`]);
  const yaml = (n: string) => parse(text(n)) as Record<string, unknown>;

  assert.equal(yaml("metadata.yaml").type, "Dashboard");
  assert.equal(
    yaml("databases/antenna_lambda.yaml").sqlalchemy_uri,
    "postgresql+psycopg2://app:s3cr:et@db.example:5432/antenna",
  );
  const charts = names.filter((n) => n.includes("/charts/"));
  assert.ok(charts.length >= 5);
  for (const n of charts) {
    const chart = yaml(n.slice(BUNDLE_ROOT.length + 1));
    const qc = JSON.parse(chart.query_context as string);
    assert.equal(qc.queries.length, 1, n);
    assert.ok(qc.queries[0].columns.length > 0, `${n}: a query without columns`);
    assert.equal(qc.form_data.viz_type, chart.viz_type, n);
  }
  const sliceType = unzipSync(await buildBundle({ type: "Slice" }));
  assert.match(
    new TextDecoder().decode(sliceType[`${BUNDLE_ROOT}/metadata.yaml`]),
    /^type: Slice$/m,
  );
});

Deno.test("toSqlalchemyUri() names the driver and rejects other schemes", () => {
  assert.equal(toSqlalchemyUri("postgres://u@h/db"), "postgresql+psycopg2://u@h/db");
  assert.equal(toSqlalchemyUri("postgresql://u@h/db"), "postgresql+psycopg2://u@h/db");
  assert.throws(
    () => toSqlalchemyUri("mysql://u:pw@h/db"),
    (e) => e instanceof UserError && e.message.includes("u:***@h") && !e.message.includes("pw"),
  );
});
