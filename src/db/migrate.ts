/**
 * Versioned schema migrations: every `sql/NNN_name.sql`, in version order,
 * each applied once in its own transaction and recorded in
 * `schema_migrations` with a SHA-256 of its text. An applied file that later
 * changes is refused (add a new migration instead). Each step takes a
 * transaction-scoped advisory lock and re-checks what is applied, so several
 * processes migrating one PostgreSQL at once apply every file exactly once.
 * A script must not contain its own BEGIN/COMMIT.
 */
import type { Db, Queryable } from "./db.ts";
import { UserError } from "../errors.ts";
import { log } from "../log.ts";

/** The repository's `sql/` folder. */
export const SQL_DIR: string = decodeURIComponent(new URL("../../sql", import.meta.url).pathname);

/** Advisory lock key of the migration runner ("antenna" in ASCII, as a number). */
const LOCK_KEY = 0x616e74656e6e61;

const FILE = /^(\d{3,})_([a-z0-9_]+)\.sql$/;

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly file: string;
  readonly sql: string;
  readonly checksum: string;
}

export interface MigrateResult {
  /** File names applied by this call (empty when all were already applied). */
  readonly applied: string[];
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Reads the migration files of `dir`, ordered by version. */
export async function readMigrations(dir: string = SQL_DIR): Promise<Migration[]> {
  const found: Migration[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".sql")) continue;
      const m = FILE.exec(entry.name);
      if (!m) {
        throw new UserError(
          `${dir}/${entry.name}: a migration file must be named NNN_name.sql (lower case)`,
        );
      }
      const sql = await Deno.readTextFile(`${dir}/${entry.name}`);
      found.push({
        version: Number(m[1]),
        name: m[2],
        file: entry.name,
        sql,
        checksum: await sha256(sql),
      });
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new UserError(`Migrations folder ${dir} does not exist`);
    }
    throw err;
  }
  found.sort((a, b) => a.version - b.version);
  for (let i = 1; i < found.length; i++) {
    if (found[i].version === found[i - 1].version) {
      throw new UserError(
        `${dir}: ${found[i - 1].file} and ${found[i].file} have the same version ${
          found[i].version
        }`,
      );
    }
  }
  return found;
}

async function lock(tx: Queryable): Promise<void> {
  await tx.query("SELECT pg_advisory_xact_lock($1::bigint)", [LOCK_KEY]);
}

function checkSame(m: Migration, recorded: string) {
  if (recorded !== m.checksum) {
    throw new UserError(
      `sql/${m.file} was changed after it was applied (checksum ${
        recorded.slice(0, 12)
      } recorded, ${
        m.checksum.slice(0, 12)
      } now): restore it and put the change in a new migration file`,
    );
  }
}

/**
 * Applies the migrations of `dir` not yet applied.
 *
 * @example
 * const { applied } = await migrate(db); // ["001_base.sql", ...] the first time, [] after
 */
export async function migrate(db: Db, dir: string = SQL_DIR): Promise<MigrateResult> {
  const migrations = await readMigrations(dir);
  await db.transaction(async (tx) => {
    await lock(tx);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INT PRIMARY KEY,
      name TEXT NOT NULL,
      checksum TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )`);
  });
  const recorded = new Map(
    (await db.query<{ version: number; checksum: string }>(
      "SELECT version, checksum FROM schema_migrations",
    )).map((r) => [r.version, r.checksum]),
  );
  // Refuse before applying anything: a changed old file means the schema on
  // disk no longer describes the database.
  for (const m of migrations) {
    const sum = recorded.get(m.version);
    if (sum !== undefined) checkSame(m, sum);
  }
  const applied: string[] = [];
  for (const m of migrations) {
    if (recorded.has(m.version)) continue;
    const did = await db.transaction(async (tx) => {
      await lock(tx);
      // Another process may have applied it while we waited for the lock.
      const again = await tx.query<{ checksum: string }>(
        "SELECT checksum FROM schema_migrations WHERE version = $1",
        [m.version],
      );
      if (again.length) {
        checkSame(m, again[0].checksum);
        return false;
      }
      try {
        await tx.exec(m.sql);
      } catch (err) {
        throw new Error(`Migration sql/${m.file} failed: ${(err as Error).message}`, {
          cause: err,
        });
      }
      await tx.query(
        "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
        [m.version, m.name, m.checksum],
      );
      return true;
    });
    if (did) {
      applied.push(m.file);
      log.info("migration applied", { component: "db", file: m.file });
    }
  }
  return { applied };
}
