/**
 * The `Db` backend for a real PostgreSQL server (local, Cloud SQL) on
 * postgres.js. Statements go through `sql.unsafe(text, params)` because our SQL
 * text is static and parameterised with `$n`; parsers from `_types.ts` make
 * int8/numeric/timestamps come back exactly as the PGlite backend returns them.
 */
import postgres from "postgres";
import type { Db, Queryable, Row } from "./db.ts";
import { OID, parseNumber, parseTimestamp, parseTimestamptz } from "./_types.ts";

export interface PostgresOptions {
  /** postgres:// URL. */
  url: string;
  /** Pool size. Default 10. */
  maxConnections?: number;
}

type Sql = postgres.Sql<Record<string, postgres.PostgresType>>;

function queryable(sql: Sql | postgres.TransactionSql): Queryable {
  return {
    async query<T = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      // postgres.js sends a call without parameters as a simple-protocol
      // script; `simple: false` keeps query() one statement on both backends.
      const rows = await sql.unsafe(
        text,
        params as postgres.ParameterOrJSON<never>[],
        { prepare: true, simple: false } as postgres.UnsafeQueryOptions,
      );
      return [...rows] as T[];
    },
    async exec(text: string): Promise<void> {
      await sql.unsafe(text, [], { simple: true } as postgres.UnsafeQueryOptions);
    },
  };
}

/** Opens a postgres.js pool. The first query fails if the server is unreachable. */
export function openPostgres(opts: PostgresOptions): Db {
  const sql: Sql = postgres(opts.url, {
    max: opts.maxConnections ?? 10,
    onnotice: () => {},
    // Sessions in UTC: TIMESTAMP columns hold UTC wall-clock time.
    connection: { TimeZone: "UTC", application_name: "antenna-lambda" },
    types: {
      bigint: {
        to: OID.int8,
        from: [OID.int8, OID.numeric],
        serialize: (x: unknown) => String(x),
        parse: parseNumber,
      },
      timestamp: {
        to: OID.timestamp,
        from: [OID.timestamp],
        serialize: (x: Date) => x.toISOString(),
        parse: parseTimestamp,
      },
      timestamptz: {
        to: OID.timestamptz,
        from: [OID.timestamptz],
        serialize: (x: Date) => x.toISOString(),
        parse: parseTimestamptz,
      },
    },
  }) as unknown as Sql;
  const base = queryable(sql);
  return {
    kind: "postgres",
    query: base.query,
    exec: base.exec,
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      return await sql.begin((tx) => fn(queryable(tx))) as T;
    },
    async close() {
      await sql.end({ timeout: 5 });
    },
  };
}
