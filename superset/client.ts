/**
 * A small client for Superset's REST API: log in, import an asset bundle,
 * point the imported database connection at a URI, list a dashboard's charts
 * and fetch a chart's data. Works against any Superset 4-6, with or without
 * CSRF protection (it always sends the token).
 */
import { UserError } from "../src/errors.ts";

export interface ChartInfo {
  readonly id: number;
  readonly slice_name: string;
  readonly viz_type?: string;
}

export interface ChartData {
  readonly rowcount: number;
  readonly data: Record<string, unknown>[];
}

export class SupersetClient {
  private constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly csrf: string,
    private readonly cookie: string,
  ) {}

  /** Logs in with a database user (`provider: db`). */
  static async login(baseUrl: string, username: string, password: string): Promise<SupersetClient> {
    const r = await fetch(`${baseUrl}/api/v1/security/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username, password, provider: "db", refresh: false }),
    });
    if (r.status === 401) {
      await r.body?.cancel();
      throw new UserError(`Superset at ${baseUrl} refused user "${username}": wrong password?`);
    }
    const { access_token: token } = await expectJson(r, "login");
    // The CSRF token is bound to the session cookie that comes with it.
    const c = await fetch(`${baseUrl}/api/v1/security/csrf_token/`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const cookie = (c.headers.getSetCookie?.() ?? []).map((s) => s.split(";")[0]).join("; ");
    const { result: csrf } = await expectJson(c, "csrf_token");
    return new SupersetClient(baseUrl, token as string, csrf as string, cookie);
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      authorization: `Bearer ${this.token}`,
      "x-csrftoken": this.csrf,
      referer: this.baseUrl,
      ...(this.cookie ? { cookie: this.cookie } : {}),
      ...extra,
    };
  }

  // deno-lint-ignore no-explicit-any
  private async call(method: string, path: string, body?: unknown): Promise<any> {
    const r = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: this.headers(body === undefined ? {} : { "content-type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return await expectJson(r, `${method} ${path}`);
  }

  /**
   * Imports a bundle (ZIP bytes) with the importer of `kind`, overwriting what
   * that importer overwrites: the dashboard importer only dashboards (it keeps
   * existing databases, datasets and charts of the same uuid), the chart
   * importer charts, the dataset importer datasets. The bundle's metadata type
   * must match the kind (see buildBundle's `type`).
   */
  async importAssets(
    kind: "dashboard" | "chart" | "dataset",
    zip: Uint8Array,
    passwords: Record<string, string> = {},
  ): Promise<void> {
    const form = new FormData();
    form.append("formData", new Blob([zip as BlobPart], { type: "application/zip" }), "bundle.zip");
    form.append("overwrite", "true");
    form.append("passwords", JSON.stringify(passwords));
    const r = await fetch(`${this.baseUrl}/api/v1/${kind}/import/`, {
      method: "POST",
      headers: this.headers(),
      body: form,
    });
    await expectJson(r, `${kind} import`);
  }

  /** The id of the database connection named `name`, if any. */
  async databaseId(name: string): Promise<number | undefined> {
    const q = encodeURIComponent(
      `(filters:!((col:database_name,opr:eq,value:'${name.replaceAll("'", "!'")}')))`,
    );
    const body = await this.call("GET", `/api/v1/database/?q=${q}`);
    return body.result?.[0]?.id;
  }

  /** Points the database connection `name` at `sqlalchemyUri` (re-imports keep the old one). */
  async setDatabaseUri(name: string, sqlalchemyUri: string): Promise<number> {
    const id = await this.databaseId(name);
    if (id === undefined) throw new Error(`No database connection named "${name}" in Superset`);
    await this.call("PUT", `/api/v1/database/${id}`, { sqlalchemy_uri: sqlalchemyUri });
    return id;
  }

  /** The dashboard's id, by id or slug. */
  async dashboardId(idOrSlug: string | number): Promise<number> {
    const body = await this.call("GET", `/api/v1/dashboard/${idOrSlug}`);
    return body.result.id;
  }

  async dashboardCharts(idOrSlug: string | number): Promise<ChartInfo[]> {
    const body = await this.call("GET", `/api/v1/dashboard/${idOrSlug}/charts`);
    return body.result.map((c: ChartInfo & { form_data?: { viz_type?: string } }) => ({
      id: c.id,
      slice_name: c.slice_name,
      viz_type: c.form_data?.viz_type,
    }));
  }

  /** The chart's data as Superset computes it from the chart's saved query context. */
  async chartData(id: number): Promise<ChartData[]> {
    const body = await this.call("GET", `/api/v1/chart/${id}/data/?format=json&type=full`);
    return body.result.map((q: ChartData) => ({ rowcount: q.rowcount, data: q.data }));
  }
}

// deno-lint-ignore no-explicit-any
async function expectJson(r: Response, what: string): Promise<any> {
  const text = await r.text();
  if (!r.ok) {
    throw new Error(`Superset ${what}: HTTP ${r.status}: ${text.slice(0, 500)}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`Superset ${what}: not JSON: ${text.slice(0, 200)}`);
  }
}
