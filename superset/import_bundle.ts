/**
 * Imports the dashboard bundle into a running Superset through its REST API
 * and makes the imported connection point at the requested database. Superset's
 * dashboard import overwrites only the dashboard, so the same bundle also goes
 * through the dataset and chart importers (edits of the bundle reach an
 * existing Superset), and the connection's URI is set explicitly: a second
 * import with another database then really switches the dashboard.
 */
import { log } from "../src/log.ts";
import { baseUrl as localUrl } from "./_paths.ts";
import { buildBundle, redact, resolveDatabaseUri, toSqlalchemyUri } from "./build_bundle.ts";
import { type ChartInfo, SupersetClient } from "./client.ts";
import { adminCredentials } from "./install.ts";

/** Names fixed by the bundle's YAML (databases/antenna_lambda.yaml, dashboards/). */
export const DATABASE_NAME = "antenna_lambda";
export const DASHBOARD_SLUG = "antenna-telemetry";
export const DASHBOARD_TITLE = "Antenna telemetry";

export interface ImportOptions {
  /** Serving database URI. Default: env SUPERSET_DATABASE_URI, else the local stack's. */
  databaseUri?: string;
  /** Default: the local Superset (http://127.0.0.1:18088). */
  baseUrl?: string;
  /** Default: SUPERSET_ADMIN_USER / SUPERSET_ADMIN_PASSWORD, else admin/admin. */
  username?: string;
  password?: string;
}

export interface ImportResult {
  readonly dashboardId: number;
  /** The dashboard's address in the browser. */
  readonly url: string;
  readonly charts: ChartInfo[];
}

/** Builds the bundle for the database, imports it and returns the dashboard. */
export async function importBundle(options: ImportOptions = {}): Promise<ImportResult> {
  const base = options.baseUrl ?? localUrl();
  const admin = adminCredentials();
  const uri = resolveDatabaseUri(options.databaseUri);
  const client = await SupersetClient.login(
    base,
    options.username ?? admin.username,
    options.password ?? admin.password,
  );
  // The dashboard importer creates what is missing but overwrites only the
  // dashboard; the dataset and chart importers then bring existing datasets
  // and charts up to date with the bundle, and the connection gets the URI.
  await client.importAssets("dashboard", await buildBundle({ databaseUri: uri }));
  await client.importAssets("dataset", await buildBundle({ databaseUri: uri, type: "SqlaTable" }));
  await client.importAssets("chart", await buildBundle({ databaseUri: uri, type: "Slice" }));
  await client.setDatabaseUri(DATABASE_NAME, toSqlalchemyUri(uri));
  const dashboardId = await client.dashboardId(DASHBOARD_SLUG);
  const charts = await client.dashboardCharts(dashboardId);
  log.info("bundle imported", {
    component: "superset",
    database: redact(uri),
    dashboardId,
    charts: charts.length,
  });
  return { dashboardId, url: `${base}/superset/dashboard/${DASHBOARD_SLUG}/`, charts };
}
