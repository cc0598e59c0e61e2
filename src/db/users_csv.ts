/**
 * Loads operator-supplied users from a CSV file (`id,name,email,quota`, quota
 * in bytes per hour) into `user_metadata`. Every row is checked first and all
 * problems are reported together, one `file:LINE: message` each; a file with
 * any problem writes nothing. A good file is upserted in one transaction.
 * Fields are trimmed; blank lines are ignored.
 */
import type { Db } from "./db.ts";
import { upsertUsers } from "./users.ts";
import { CsvSyntaxError, parseCsv } from "./_csv.ts";
import { UserError } from "../errors.ts";

const HEADER = ["id", "name", "email", "quota"];
const MAX_ID = 128;
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
/** Problems listed in the error; the rest are counted. */
const MAX_LISTED = 50;
const CHUNK = 5_000;

export interface UserRow {
  id: string;
  name: string;
  email: string;
  quota: number;
}

export interface LoadResult {
  readonly inserted: number;
  readonly updated: number;
}

function basename(path: string): string {
  return path.split(/[\\/]/).pop() || path;
}

/** Parses and validates a users CSV text; throws one UserError listing every bad line. */
export function parseUsersCsv(text: string, file: string): UserRow[] {
  let records;
  try {
    records = parseCsv(text).filter((r) => !(r.fields.length === 1 && r.fields[0].trim() === ""));
  } catch (err) {
    if (err instanceof CsvSyntaxError) {
      throw new UserError(`${file}:${err.line}: ${err.message}; nothing was loaded`);
    }
    throw err;
  }
  if (records.length === 0) throw new UserError(`${file}: empty file, expected a header line`);
  const header = records[0].fields.map((f) => f.trim().toLowerCase());
  if (header.join(",") !== HEADER.join(",")) {
    throw new UserError(
      `${file}:${records[0].line}: the header must be "${HEADER.join(",")}", got "${
        records[0].fields.join(",")
      }"; nothing was loaded`,
    );
  }
  const problems: string[] = [];
  const rows: UserRow[] = [];
  const seen = new Map<string, number>();
  for (const rec of records.slice(1)) {
    const bad = (msg: string) => problems.push(`${file}:${rec.line}: ${msg}`);
    if (rec.fields.length !== HEADER.length) {
      bad(`expected ${HEADER.length} columns (id,name,email,quota), got ${rec.fields.length}`);
      continue;
    }
    const [id, name, email, quotaText] = rec.fields.map((f) => f.trim());
    const before = problems.length;
    if (id === "") bad("id is empty");
    else if (id.length > MAX_ID) bad(`id is longer than ${MAX_ID} characters`);
    else if (seen.has(id)) bad(`duplicate id "${id}" (first on line ${seen.get(id)})`);
    else seen.set(id, rec.line);
    if (name === "") bad("name is empty");
    if (!EMAIL.test(email)) bad(`email "${email}" is not an e-mail address`);
    const quota = Number(quotaText);
    if (!/^\d+$/.test(quotaText)) {
      bad(`quota "${quotaText}" is not a non-negative integer (bytes per hour)`);
    } else if (!Number.isSafeInteger(quota)) {
      bad(`quota "${quotaText}" is larger than ${Number.MAX_SAFE_INTEGER}`);
    }
    if (problems.length === before) rows.push({ id, name, email, quota });
  }
  if (problems.length) {
    const listed = problems.slice(0, MAX_LISTED);
    const more = problems.length - listed.length;
    throw new UserError(
      `${file}: ${problems.length} bad row(s), nothing was loaded:\n` + listed.join("\n") +
        (more ? `\n... and ${more} more` : ""),
    );
  }
  return rows;
}

/**
 * Validates `path` and, if every row is good, upserts its users in one transaction.
 *
 * @example
 * const { inserted, updated } = await loadUsersCsv(db, "users.csv");
 */
export async function loadUsersCsv(db: Db, path: string): Promise<LoadResult> {
  const file = basename(path);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new UserError(`${path}: no such file`);
    if (err instanceof Deno.errors.IsADirectory) throw new UserError(`${path}: is a folder`);
    throw err;
  }
  const rows = parseUsersCsv(text, file);
  return await db.transaction(async (tx) => {
    let inserted = 0, updated = 0;
    for (let i = 0; i < rows.length; i += CHUNK) {
      const part = rows.slice(i, i + CHUNK);
      const n = await upsertUsers(tx, {
        ids: part.map((r) => r.id),
        names: part.map((r) => r.name),
        emails: part.map((r) => r.email),
        quotas: part.map((r) => r.quota),
      });
      inserted += n.inserted;
      updated += n.updated;
    }
    return { inserted, updated };
  });
}
