/**
 * Builds the importable Superset asset bundle (a ZIP) from the readable YAML
 * under superset/bundle/: the database URI is substituted, and each chart gets
 * a `query_context` derived from its params, which Superset needs to serve
 * `/api/v1/chart/{id}/data` and which its own UI would store on save. The ZIP
 * holds one top-level folder, as Superset's exporter writes it.
 *
 *   deno run -A superset/build_bundle.ts [--database-uri URI] [--out FILE]
 */
import { join, relative } from "node:path";
import { parse, stringify } from "yaml";
import { zipSync } from "fflate";
import { UserError } from "../src/errors.ts";
import { supersetPaths } from "./_paths.ts";
import { optionValue } from "./_run.ts";

/** The local stack's serving database, used when nothing else is given. */
export const DEFAULT_DATABASE_URI = "postgresql://postgres@127.0.0.1:15432/antenna";
/** The folder name inside the ZIP. */
export const BUNDLE_ROOT = "antenna_lambda_bundle";
const PLACEHOLDER = "${SQLALCHEMY_URI}";

export interface BuildBundleOptions {
  /** postgres:// or postgresql:// URI of the serving database.
   * Default: env SUPERSET_DATABASE_URI, else {@link DEFAULT_DATABASE_URI}. */
  databaseUri?: string;
  /** Folder holding metadata.yaml and the asset folders. Default: superset/bundle. */
  bundleDir?: string;
  /**
   * The bundle's declared type: Superset's dashboard, chart and dataset
   * importers each accept only their own (`Dashboard`, `Slice`, `SqlaTable`).
   * The same files serve all three. Default "Dashboard".
   */
  type?: BundleType;
}

export type BundleType = "Dashboard" | "Slice" | "SqlaTable";

/** The database URI to use: the explicit one, the environment's, or the stack's. */
export function resolveDatabaseUri(explicit?: string): string {
  return explicit ?? Deno.env.get("SUPERSET_DATABASE_URI") ?? DEFAULT_DATABASE_URI;
}

/**
 * Turns a libpq-style URL into one SQLAlchemy 1.4 accepts: it knows no
 * `postgres://` dialect, and naming the driver avoids guessing.
 * Example: `postgres://u@h:5432/db` → `postgresql+psycopg2://u@h:5432/db`.
 */
export function toSqlalchemyUri(uri: string): string {
  const m = /^(postgres|postgresql)(\+psycopg2)?:\/\//.exec(uri);
  if (!m) {
    throw new UserError(
      `Database URI "${redact(uri)}" is not a postgres:// or postgresql:// URI`,
    );
  }
  return "postgresql+psycopg2://" + uri.slice(m[0].length);
}

/** The URI with any password masked, for messages and logs. */
export function redact(uri: string): string {
  return uri.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@");
}

type Params = Record<string, unknown>;
interface AdhocFilter {
  clause: string;
  subject: string;
  operator: string;
  comparator: unknown;
  expressionType: string;
}

/** Superset's query-object filters from the chart's simple adhoc filters. */
function filtersOf(params: Params) {
  const adhoc = (params.adhoc_filters ?? []) as AdhocFilter[];
  return adhoc
    .filter((f) => f.expressionType === "SIMPLE" && f.clause === "WHERE")
    .map((f) => ({ col: f.subject, op: f.operator, val: f.comparator }));
}

/**
 * The query object the Superset frontend would send for these params (without
 * its client-side post-processing, which only reshapes rows). Kept to the
 * viz types the bundle uses; a new type fails the build instead of importing a
 * chart whose data API would answer 400.
 */
export function queryOf(vizType: string, params: Params): Params {
  const groupby = (params.groupby ?? []) as string[];
  const metrics = (params.metrics ?? (params.metric ? [params.metric] : [])) as string[];
  const base = {
    filters: filtersOf(params),
    extras: { having: "", where: "" },
    applied_time_extras: {},
    time_range: params.time_range ?? "No filter",
    row_limit: params.row_limit ?? 10000,
    annotation_layers: [],
    url_params: {},
    custom_params: {},
    custom_form_data: {},
  };
  switch (vizType) {
    case "echarts_timeseries_line":
    case "echarts_timeseries_bar":
    case "echarts_area": {
      const axis = params.x_axis as string;
      return {
        ...base,
        columns: [
          {
            timeGrain: params.time_grain_sqla,
            columnType: "BASE_AXIS",
            sqlExpression: axis,
            label: axis,
            expressionType: "SQL",
          },
          ...groupby,
        ],
        metrics,
        orderby: [[metrics[0], false]],
        series_columns: groupby,
        series_limit: 0,
        order_desc: true,
      };
    }
    case "pie":
      return { ...base, columns: groupby, metrics, orderby: [[metrics[0], false]] };
    case "table": {
      if (params.query_mode === "raw") {
        const orderby = ((params.order_by_cols ?? []) as string[]).map((s) => JSON.parse(s));
        return { ...base, columns: params.all_columns, metrics: [], orderby };
      }
      const sortBy = (params.timeseries_limit_metric as string | undefined) ?? metrics[0];
      return {
        ...base,
        columns: groupby,
        metrics,
        orderby: [[sortBy, !params.order_desc]],
      };
    }
    default:
      throw new Error(`queryOf(): viz_type "${vizType}" has no query builder here`);
  }
}

/** The `query_context` JSON a chart carries in an export. */
export function queryContextOf(vizType: string, params: Params): string {
  // The importer rewrites datasource ids to the imported dataset's.
  const datasource = { id: 0, type: "table" };
  return JSON.stringify({
    datasource,
    force: false,
    queries: [queryOf(vizType, params)],
    form_data: {
      ...params,
      datasource: "0__table",
      force: false,
      result_format: "json",
      result_type: "full",
    },
    result_format: "json",
    result_type: "full",
  });
}

async function* yamlFiles(dir: string): AsyncGenerator<string> {
  const entries = [];
  for await (const e of Deno.readDir(dir)) entries.push(e);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory) yield* yamlFiles(path);
    else if (e.name.endsWith(".yaml")) yield path;
  }
}

/** Builds the bundle in memory and returns the ZIP bytes. */
export async function buildBundle(options: BuildBundleOptions = {}): Promise<Uint8Array> {
  const dir = options.bundleDir ?? supersetPaths().bundleDir;
  const uri = toSqlalchemyUri(resolveDatabaseUri(options.databaseUri));
  const files: Record<string, Uint8Array> = {};
  const enc = new TextEncoder();
  for await (const path of yamlFiles(dir)) {
    const rel = relative(dir, path).replaceAll("\\", "/");
    let text = await Deno.readTextFile(path);
    if (rel === "metadata.yaml") {
      text = text.replace(/^type: .*$/m, `type: ${options.type ?? "Dashboard"}`);
    } else if (rel.startsWith("databases/")) {
      // A JSON string is a valid YAML scalar: quotes and escapes stay correct.
      text = text.replaceAll(PLACEHOLDER, JSON.stringify(uri));
    } else if (rel.startsWith("charts/")) {
      const chart = parse(text) as Params;
      chart.query_context = queryContextOf(chart.viz_type as string, chart.params as Params);
      text = stringify(chart, { lineWidth: 0 });
    }
    files[`${BUNDLE_ROOT}/${rel}`] = enc.encode(text);
  }
  if (!files[`${BUNDLE_ROOT}/metadata.yaml`]) {
    throw new UserError(`No metadata.yaml in bundle folder "${dir}"`);
  }
  return zipSync(files, { level: 6 });
}

/** Builds the bundle and writes it to `out`; returns `out`. */
export async function writeBundle(out: string, options: BuildBundleOptions = {}): Promise<string> {
  await Deno.writeFile(out, await buildBundle(options));
  return out;
}

export async function main(args: string[]): Promise<void> {
  const out = optionValue(args, "--out") ?? "antenna_lambda_bundle.zip";
  await writeBundle(out, { databaseUri: optionValue(args, "--database-uri") });
  console.log(out);
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    if (e instanceof UserError) {
      console.error(`error: ${e.message}`);
      Deno.exit(2);
    }
    throw e;
  }
}
