/**
 * The end-to-end dashboard scenario behind tests/superset/superset_test.ts, as data:
 * fill a database with a given `populate` step, make sure Superset and Chromium
 * are there, import the bundle pointing at that database, then read every
 * chart twice: through the REST data API and in a real browser. The caller
 * asserts on the returned report, so the lead can swap the populate step (a
 * simulator + pipeline run) without touching the Superset side.
 */
import { join } from "node:path";
import { parse } from "yaml";
import { log } from "../src/log.ts";
import { supersetPaths } from "./_paths.ts";
import { ensureChromium } from "./browser.ts";
import { SupersetClient } from "./client.ts";
import { checkDashboard, type DashboardReport } from "./dashboard_check.ts";
import { importBundle } from "./import_bundle.ts";
import { adminCredentials, install } from "./install.ts";
import { start } from "./server.ts";

export interface VerifyOptions {
  /** postgres:// URL of the database the dashboard reads. */
  databaseUrl: string;
  /** Fills that database with the serving tables and views. */
  populate: (url: string) => Promise<unknown>;
  /** Where to save the dashboard screenshot (PNG). */
  screenshotPath?: string;
  /** Budget for the browser part in ms. Default 180000. */
  browserTimeoutMs?: number;
}

export interface VerifyReport {
  /** slice_name of every chart in the bundle's charts/ folder. */
  readonly bundleCharts: string[];
  /** Charts of the imported dashboard with the row count the REST data API returned. */
  readonly apiCharts: { id: number; title: string; rows: number }[];
  readonly browser: DashboardReport;
  /** Wall time of each step in ms. */
  readonly timings: Record<string, number>;
}

/** The slice names declared in superset/bundle/charts/*.yaml. */
export async function bundleChartTitles(): Promise<string[]> {
  const dir = join(supersetPaths().bundleDir, "charts");
  const titles: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.name.endsWith(".yaml")) continue;
    const chart = parse(await Deno.readTextFile(join(dir, e.name))) as { slice_name: string };
    titles.push(chart.slice_name);
  }
  return titles.sort();
}

export async function verifyDashboard(options: VerifyOptions): Promise<VerifyReport> {
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      timings[name] = Math.round(performance.now() - t0);
      log.info("verify step", { component: "superset", step: name, ms: timings[name] });
    }
  };
  await step("populate", () => options.populate(options.databaseUrl));
  await step("browser", () => ensureChromium());
  await step("install", () => install());
  await step("start", () => start());
  const imported = await step("import", () => importBundle({ databaseUri: options.databaseUrl }));

  const admin = adminCredentials();
  const apiCharts = await step("api", async () => {
    const client = await SupersetClient.login(
      new URL(imported.url).origin,
      admin.username,
      admin.password,
    );
    const out = [];
    for (const c of imported.charts) {
      const results = await client.chartData(c.id);
      out.push({
        id: c.id,
        title: c.slice_name,
        rows: results.reduce((n, r) => n + r.rowcount, 0),
      });
    }
    return out;
  });

  const browser = await step("dashboard", () =>
    checkDashboard({
      url: imported.url,
      username: admin.username,
      password: admin.password,
      expectedCharts: imported.charts.length,
      screenshotPath: options.screenshotPath,
      timeoutMs: options.browserTimeoutMs,
    }));
  return { bundleCharts: await bundleChartTitles(), apiCharts, browser, timings };
}
