/**
 * `provision`: brings a database to the schema and data the pipeline needs:
 * applies the migrations in `sql/`, seeds a user per simulated device and
 * loads operator users from a CSV file. Safe to run again at any time. It
 * prints one summary line per step on stdout; a user mistake is one line on
 * stderr and exit code 1.
 *
 *   deno task provision [--config pipeline.yaml] [--database-url URL]
 *                       [--users users.csv] [--no-seed]
 */
import { loadPlan } from "../config/mod.ts";
import { UserError } from "../errors.ts";
import { loadUsersCsv, migrate, openPlanDb, redactUrl } from "../db/mod.ts";
import { HIGH_QUOTA, LOW_QUOTA, seedUsers } from "../simulator/mod.ts";

const USAGE = `Usage: provision [options]

Applies the SQL migrations, seeds one user per simulated device and loads users
from a CSV file. Running it again changes nothing that is already in place.

Options:
  --config <file>        pipeline file (default: ./pipeline.yaml if present, else defaults)
  --database-url <url>   postgres:// URL (overrides the config; default: embedded PGlite)
  --embedded-dir <dir>   folder of the embedded database (overrides the config)
  --users <file.csv>     load users (header id,name,email,quota; quota = bytes/hour)
  --devices <n>          simulated devices to seed (overrides the config)
  --no-seed              do not seed users for the simulator's devices
  -h, --help             show this help
`;

interface Args {
  config?: string;
  databaseUrl?: string;
  embeddedDir?: string;
  users?: string;
  devices?: number;
  seed: boolean;
  help: boolean;
}

/** Parses the command line; every mistake is a UserError naming the flag. */
export function parseArgs(argv: string[]): Args {
  const out: Args = { seed: true, help: false };
  const valued = ["--config", "--database-url", "--embedded-dir", "--users", "--devices"];
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i];
    let value: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) {
      value = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    if (arg === "-h" || arg === "--help") {
      out.help = true;
      continue;
    }
    if (arg === "--no-seed") {
      out.seed = false;
      continue;
    }
    if (!valued.includes(arg)) {
      throw new UserError(`Unknown argument "${argv[i]}" (see provision --help)`);
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined || value.startsWith("--")) {
        throw new UserError(`${arg} needs a value`);
      }
    }
    switch (arg) {
      case "--config":
        out.config = value;
        break;
      case "--database-url":
        out.databaseUrl = value;
        break;
      case "--embedded-dir":
        out.embeddedDir = value;
        break;
      case "--users":
        out.users = value;
        break;
      case "--devices": {
        const n = Number(value);
        if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
          throw new UserError(`--devices must be a non-negative integer, got "${value}"`);
        }
        out.devices = n;
        break;
      }
    }
  }
  return out;
}

/** Runs `provision`; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    const args = parseArgs(argv);
    if (args.help) {
      console.log(USAGE);
      return 0;
    }
    const plan = await loadPlan(args.config);
    // Flags override the plan; no --config = ./pipeline.yaml if present, else defaults.
    const url = args.databaseUrl ?? plan.database.url;
    const embeddedDir = args.embeddedDir ?? plan.database.embedded.dir;
    const devices = args.devices ?? plan.source.simulator.devices;
    const db = await openPlanDb(
      { ...plan.database, url, embedded: { ...plan.database.embedded, dir: embeddedDir } },
      { maxConnections: 2 },
    );
    try {
      console.log(
        url
          ? `database: PostgreSQL at ${redactUrl(url)}`
          : db.kind === "postgres"
          ? `database: embedded PGlite in ${embeddedDir}, through the port of the process using it`
          : `database: embedded PGlite in ${embeddedDir}`,
      );
      const { applied } = await migrate(db);
      const [{ n }] = await db.query<{ n: number }>(
        "SELECT count(*) AS n FROM schema_migrations",
      );
      console.log(
        applied.length
          ? `migrations: applied ${applied.join(", ")} (${n} in total)`
          : `migrations: up to date (${n} applied)`,
      );
      if (args.seed) {
        const seeded = await seedUsers(db, { devices });
        console.log(
          `seed: ${seeded} of ${devices} simulated users inserted, the others kept as they are (every 5th with a ${
            LOW_QUOTA / 1e6
          } MB hourly quota, others ${HIGH_QUOTA / 1e9} GB)`,
        );
      } else {
        console.log("seed: skipped (--no-seed)");
      }
      if (args.users) {
        const { inserted, updated } = await loadUsersCsv(db, args.users);
        console.log(`users: ${args.users}: ${inserted} inserted, ${updated} updated`);
      }
      const [{ users }] = await db.query<{ users: number }>(
        "SELECT count(*) AS users FROM user_metadata",
      );
      console.log(`done: user_metadata holds ${users} users`);
    } finally {
      await db.close();
    }
    return 0;
  } catch (err) {
    if (err instanceof UserError) {
      console.error(`error: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
