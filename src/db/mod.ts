/**
 * Front door of the database layer: `openDb` picks the backend (postgres.js
 * for a URL, embedded PGlite otherwise), plus migrations, CSV loading and
 * the embedded wire-protocol server. Both backends return the same JS types:
 * BIGINT/NUMERIC as `number` (a `bigint` beyond 2^53-1), TIMESTAMP (UTC by
 * convention) and TIMESTAMPTZ as `Date`.
 */
import type { Db } from "./db.ts";
import { openPostgres } from "./postgres.ts";
import { EmbeddedInUseError, openPglite } from "./pglite.ts";
import type { DatabasePlan } from "../config/plan.ts";
import { log } from "../log.ts";
import { UserError } from "../errors.ts";

export type { Db, Queryable, Row } from "./db.ts";
export { serveEmbedded } from "./serve.ts";
export type { EmbeddedServer, ServeOptions } from "./serve.ts";
export { migrate, SQL_DIR } from "./migrate.ts";
export { loadUsersCsv } from "./users_csv.ts";
export { EmbeddedInUseError } from "./pglite.ts";

/** The URL without its password, for messages and logs. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "<unparsable database URL>";
  }
}

/** Turns "cannot reach / log in / no such database" into one clear UserError line. */
function connectionError(url: string, err: unknown): unknown {
  const e = err as { code?: string; message?: string };
  const where = redactUrl(url);
  const known: Record<string, string> = {
    ECONNREFUSED: "connection refused (is PostgreSQL running?)",
    ENOTFOUND: "host not found",
    ETIMEDOUT: "connection timed out",
    CONNECT_TIMEOUT: "connection timed out",
    "28P01": "password authentication failed",
    "28000": "access refused",
    "3D000": "the database does not exist",
  };
  const why = e?.code ? known[e.code] : undefined;
  if (why) return new UserError(`Cannot connect to ${where}: ${why}`, { cause: err });
  if (err instanceof TypeError && /Invalid URL/i.test(String(e.message))) {
    return new UserError(`Invalid database URL ${where}`, { cause: err });
  }
  return err;
}

export interface OpenDbOptions {
  /** postgres:// URL; undefined = embedded PGlite. */
  url?: string;
  /** Folder the embedded database persists to; undefined = in memory (tests). */
  embeddedDir?: string;
  /** Pool size of the postgres backend. Default 10. */
  maxConnections?: number;
}

/**
 * Opens the database the plan names.
 *
 * @example
 * const db = await openDb({ url: plan.database.url, embeddedDir: plan.database.embedded.dir });
 * const rows = await db.query<{ n: number }>("SELECT count(*) AS n FROM user_metadata");
 */
export async function openDb(opts: OpenDbOptions): Promise<Db> {
  if (opts.url) {
    let db: Db | undefined;
    try {
      db = openPostgres({ url: opts.url, maxConnections: opts.maxConnections });
      await db.query("SELECT 1"); // fail here, clearly, rather than on first use
      return db;
    } catch (err) {
      await db?.close().catch(() => {});
      throw connectionError(opts.url, err);
    }
  }
  return await openPglite({ dir: opts.embeddedDir });
}

/**
 * Opens the database of a plan for a command run beside `start` (batch,
 * provision): the configured URL, else the embedded folder, else, when a
 * running `start` holds that folder, the wire-protocol port it serves it on.
 */
export async function openPlanDb(
  database: DatabasePlan,
  opts: { maxConnections?: number } = {},
): Promise<Db> {
  try {
    return await openDb({
      url: database.url,
      embeddedDir: database.url ? undefined : database.embedded.dir,
      maxConnections: opts.maxConnections ?? database.maxConnections,
    });
  } catch (err) {
    if (!(err instanceof EmbeddedInUseError) || database.embedded.port === 0) throw err;
    const { host, port } = database.embedded;
    const url = `postgres://postgres@${host}:${port}/postgres`;
    log.info("embedded database in use by a running process: connecting through its port", {
      component: "db",
      pid: err.pid,
      url,
    });
    // One connection: the embedded server runs one session at a time.
    return await openDb({ url, maxConnections: 1 });
  }
}
