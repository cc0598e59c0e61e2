/**
 * The one database interface every layer uses, implemented by postgres.js
 * (real PostgreSQL, Cloud SQL) and by PGlite (embedded). Queries use `$1`
 * placeholders; bulk writes pass arrays and `unnest($1::text[], ...)` so both
 * backends take them. Identifiers never come from input: SQL text is static.
 */

export type Row = Record<string, unknown>;

export interface Queryable {
  /** Runs one parameterised statement and returns its rows. */
  query<T = Row>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Runs a script of several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

export interface Db extends Queryable {
  readonly kind: "postgres" | "pglite";
  /** Runs `fn` in one transaction: committed if it resolves, rolled back if it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}
