/**
 * Front door of the database layer: `openDb` picks the backend (postgres.js
 * for a URL, embedded PGlite otherwise), plus migrations, seed, CSV loading and
 * the embedded wire-protocol server. Both backends return the same JS types:
 * BIGINT/NUMERIC as `number` (a `bigint` beyond 2^53-1), TIMESTAMP (UTC by
 * convention) and TIMESTAMPTZ as `Date`.
 */
import type { Db } from "./db.ts";
import { openPostgres } from "./postgres.ts";
import { openPglite } from "./pglite.ts";

export type { Db, Queryable, Row } from "./db.ts";
export { serveEmbedded } from "./serve.ts";
export type { EmbeddedServer, ServeOptions } from "./serve.ts";
export { migrate, SQL_DIR } from "./migrate.ts";
export { seedQuota, seedUsers } from "./seed.ts";
export { loadUsersCsv } from "./users_csv.ts";

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
    const db = openPostgres({ url: opts.url, maxConnections: opts.maxConnections });
    try {
      await db.query("SELECT 1"); // fail here, clearly, rather than on first use
    } catch (err) {
      await db.close().catch(() => {});
      throw err;
    }
    return db;
  }
  return await openPglite({ dir: opts.embeddedDir });
}
