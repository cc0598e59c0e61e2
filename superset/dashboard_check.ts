/**
 * Opens a Superset dashboard in headless Chromium (Debian's, driven by
 * playwright-core), logs in through the login form like a person, waits until
 * every chart has finished loading, and reports per chart whether it drew data
 * (an svg or canvas, or table rows) and which error messages the page shows.
 * Optionally saves a full-page screenshot. The caller decides what to assert.
 */
import { chromium, type Page } from "playwright-core";
import { join } from "node:path";
import { log } from "../src/log.ts";
import { supersetPaths } from "./_paths.ts";
import { CHROMIUM, CHROMIUM_ARGS } from "./browser.ts";

export interface ChartState {
  readonly title: string;
  /** What the chart drew: an echarts canvas/svg, a table with rows, or nothing. */
  readonly rendered: "canvas" | "svg" | "table" | "none";
  readonly tableRows: number;
  readonly loading: boolean;
  /** Error or empty-result messages shown inside the chart. */
  readonly errors: string[];
}

export interface DashboardReport {
  readonly charts: ChartState[];
  /** Error messages anywhere on the page (alerts, toasts). */
  readonly pageErrors: string[];
  readonly screenshot?: string;
}

export interface CheckOptions {
  /** Full dashboard URL, e.g. http://127.0.0.1:18088/superset/dashboard/antenna-telemetry/. */
  url: string;
  username: string;
  password: string;
  /** How many charts to wait for. */
  expectedCharts: number;
  /** Where to save a full-page PNG; none when unset. */
  screenshotPath?: string;
  /** Overall time budget in ms. Default 180000. */
  timeoutMs?: number;
}

// The few DOM members inspect() uses. Declared here rather than pulling in
// lib.dom, whose stream types clash with Deno's in the project-wide check.
interface El {
  readonly textContent: string | null;
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): Iterable<El> & { readonly length: number };
}

// Runs in the page: one entry per chart holder of the dashboard grid.
function inspect(): { charts: ChartState[]; pageErrors: string[] } {
  const document = (globalThis as unknown as { document: El }).document;
  const errorText = /unexpected error|no results|error|failed|not found|does not exist|no data/i;
  const holders = [...document.querySelectorAll(".dashboard-component-chart-holder")];
  const charts = holders.map((h) => {
    const title = (h.querySelector("[data-test='editable-title'], .header-title, .editable-title")
      ?.textContent ?? "").trim();
    const canvas = h.querySelector(".chart-container canvas, .slice_container canvas");
    const svg = h.querySelector(".chart-container svg path, .slice_container svg path");
    const rows = h.querySelectorAll("table tbody tr").length;
    const loading = h.querySelector(
      ".loading, [data-test='loading-indicator'], .ant-spin-spinning",
    );
    const errors = [
      ...h.querySelectorAll(
        "[role='alert'], .alert, .ant-alert, [data-test='error-tooltip'], .error-message, .ant-empty-description",
      ),
    ].map((e) => (e.textContent ?? "").trim()).filter((t) => t !== "");
    // An empty chart shows "No results" as plain text, not as an alert.
    const text = (h.textContent ?? "").trim();
    if (/^no results\b|no results were returned/i.test(text)) errors.push("No results");
    // The empty-state picture is an svg too: it is no data.
    const empty = h.querySelector(".ant-empty") !== null;
    const rendered: ChartState["rendered"] = empty
      ? "none"
      : rows > 0
      ? "table"
      : canvas
      ? "canvas"
      : svg
      ? "svg"
      : "none";
    return { title, rendered, tableRows: rows, loading: loading !== null, errors };
  });
  const pageErrors = [
    ...document.querySelectorAll(
      ".ant-message-error, .ant-notification-notice-error, [data-test='toast-container'] .toast--danger",
    ),
  ].map((e) => (e.textContent ?? "").trim()).filter((t) => errorText.test(t));
  return { charts, pageErrors };
}

/**
 * Logs in through the form. The login page is a React form: a click that lands
 * before its handlers are attached does nothing, so wait for the page to
 * settle and try again a few times rather than once with a long timeout.
 */
async function login(page: Page, origin: string, username: string, password: string) {
  let lastError: unknown;
  for (let attempt = 1; attempt <= 4; attempt++) {
    await page.goto(`${origin}/login/`, { waitUntil: "networkidle" });
    if (!new URL(page.url()).pathname.startsWith("/login")) return; // already logged in
    try {
      await page.locator("input[name='username'], #username").first().fill(username);
      const pw = page.locator("input[name='password'], #password").first();
      await pw.fill(password);
      await pw.press("Enter");
      await page.waitForURL((u) => !u.pathname.startsWith("/login"), { timeout: 20_000 });
      await page.waitForLoadState("networkidle");
      // Leaving /login is not proof: a rejected or half-hydrated form can pass
      // through another page and land on /login again. Ask the API who we are
      // (page.request shares the browser's cookies).
      const me = await page.request.get(`${origin}/api/v1/me/`);
      if (me.ok()) return;
      throw new Error(`/api/v1/me/ answered ${me.status()} after the login form`);
    } catch (e) {
      lastError = e;
      log.warn("superset login did not go through, retrying", { component: "superset", attempt });
    }
  }
  throw new Error(`Could not log in to ${origin} as "${username}"`, { cause: lastError });
}

const VIEWPORT = { width: 1600, height: 1400 };

/** Logs in, opens the dashboard, waits for all charts and inspects them. */
export async function checkDashboard(options: CheckOptions): Promise<DashboardReport> {
  const timeout = options.timeoutMs ?? 180_000;
  const deadline = Date.now() + timeout;
  const profile = await Deno.makeTempDir({ prefix: "superset-chromium-" });
  // A persistent context on a fresh folder = a fresh --user-data-dir.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...CHROMIUM_ARGS],
    viewport: VIEWPORT,
    timeout,
  });
  try {
    const page = context.pages()[0] ?? await context.newPage();
    page.setDefaultTimeout(timeout);
    await login(page, new URL(options.url).origin, options.username, options.password);
    await page.goto(options.url);
    try {
      await page.waitForSelector(".dashboard-component-chart-holder");
    } catch (e) {
      // Leave evidence: what the page showed instead of the dashboard.
      const shot = join(supersetPaths().state, "dashboard-failure.png");
      await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
      const text = (await page.locator("body").innerText().catch(() => "")).slice(0, 500);
      throw new Error(
        `Dashboard ${options.url} showed no chart (page ${page.url()}, screenshot ${shot}): ${text}`,
        { cause: e },
      );
    }

    // Poll until every expected chart has stopped loading and drew or failed.
    const settle = async () => {
      let state = await page.evaluate(inspect);
      while (Date.now() < deadline) {
        const done = state.charts.length >= options.expectedCharts &&
          state.charts.every((c) => !c.loading && (c.rendered !== "none" || c.errors.length > 0));
        if (done) break;
        await page.waitForTimeout(500);
        state = await page.evaluate(inspect);
      }
      // Animations (echarts draws in ~1 s) should finish before the picture.
      await page.waitForTimeout(1500);
      return await page.evaluate(inspect);
    };
    let last = await settle();
    // A full-page screenshot of a page taller than the viewport resizes it,
    // and charts redraw on resize: caught mid-redraw they come out blank. So
    // make the viewport as tall as the page first and let the charts settle.
    const height = await page.evaluate(() =>
      (globalThis as unknown as { document: { documentElement: { scrollHeight: number } } })
        .document.documentElement.scrollHeight
    );
    if (height > VIEWPORT.height) {
      await page.setViewportSize({ width: VIEWPORT.width, height: Math.min(height, 8000) });
      last = await settle();
    }
    if (options.screenshotPath) {
      await page.screenshot({ path: options.screenshotPath, fullPage: true });
    }
    return { ...last, screenshot: options.screenshotPath };
  } finally {
    await context.close();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}
