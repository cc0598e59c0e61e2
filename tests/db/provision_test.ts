/**
 * `provision` end to end on real PostgreSQL: idempotent (twice = same schema
 * and rows), the exact columns the product defines, CSV loading through the
 * CLI, and one-line user errors with exit code 1.
 */
import assert from "node:assert/strict";
import { main } from "../../src/cli/provision.ts";
import { openDb, SQL_DIR } from "../../src/db/mod.ts";
import { seedUsers } from "../../src/simulator/users.ts";
import { freshDatabase } from "../_support/services.ts";

const testdata = new URL("../testdata/", import.meta.url).pathname;
const cliPath = new URL("../../src/cli/provision.ts", import.meta.url).pathname;
const opts = { sanitizeResources: false, sanitizeOps: false };

/** Runs the CLI as a subprocess, as an operator would. */
async function provision(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cliPath, ...args],
    env: { LOG_LEVEL: "warn" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: "provision twice gives the same schema and rows, with each migration recorded once",
  ...opts,
  async fn() {
    const fresh = await freshDatabase("prov");
    const config = await Deno.makeTempFile({ suffix: ".yaml" });
    await Deno.writeTextFile(config, "source:\n  simulator:\n    devices: 12\n");
    const db = await openDb({ url: fresh.url });
    try {
      const files = [...Deno.readDirSync(SQL_DIR)].filter((e) => /^\d+_.*\.sql$/.test(e.name));
      assert.equal(await main(["--config", config, "--database-url", fresh.url]), 0);
      const snapshot = () => db.query("SELECT * FROM user_metadata ORDER BY id");
      const first = await snapshot();
      assert.equal(first.length, 12);
      assert.equal(await main(["--config", config, "--database-url", fresh.url]), 0);
      assert.deepEqual(await snapshot(), first);

      const versions = await db.query<{ version: number; n: number }>(
        "SELECT version, count(*) AS n FROM schema_migrations GROUP BY version ORDER BY version",
      );
      assert.equal(versions.length, files.length);
      assert.ok(versions.every((v) => v.n === 1));
      assert.equal(versions[0].version, 1);

      // Every 5th seeded user has the low quota.
      const low = await db.query<{ email: string }>(
        "SELECT email FROM user_metadata WHERE quota = 5000000 ORDER BY email",
      );
      assert.deepEqual(low.map((r) => r.email), ["user10@example.com", "user5@example.com"]);
    } finally {
      await db.close();
      await fresh.drop();
      await Deno.remove(config);
    }
  },
});

Deno.test({
  name: "provision (and start's seeding) keeps an edited simulated user as it is",
  ...opts,
  async fn() {
    const fresh = await freshDatabase("prov_keep");
    const config = await Deno.makeTempFile({ suffix: ".yaml" });
    await Deno.writeTextFile(config, "source:\n  simulator:\n    devices: 12\n");
    const db = await openDb({ url: fresh.url });
    try {
      assert.equal(await main(["--config", config, "--database-url", fresh.url]), 0);
      const first = "00000000-0000-0000-0000-000000000001";
      await db.query(
        "UPDATE user_metadata SET quota = 123, email = 'ops@example.com' WHERE id = $1",
        [first],
      );
      await db.query("DELETE FROM user_metadata WHERE id = $1", [
        "00000000-0000-0000-0000-000000000002",
      ]);
      assert.equal(await seedUsers(db, { devices: 12 }), 1, "only the deleted user comes back");
      assert.equal(await main(["--config", config, "--database-url", fresh.url]), 0);
      const rows = await db.query<{ id: string; email: string; quota: number }>(
        "SELECT id, email, quota FROM user_metadata WHERE id = ANY($1::text[]) ORDER BY id",
        [[first, "00000000-0000-0000-0000-000000000002"]],
      );
      assert.deepEqual(rows, [
        { id: first, email: "ops@example.com", quota: 123 },
        { id: "00000000-0000-0000-0000-000000000002", email: "user2@example.com", quota: 1e9 },
      ]);
      const [{ n }] = await db.query<{ n: number }>("SELECT count(*)::int AS n FROM user_metadata");
      assert.equal(n, 12);
    } finally {
      await db.close();
      await fresh.drop();
      await Deno.remove(config);
    }
  },
});

Deno.test({
  name: "provision creates the three base tables with exactly the product's columns",
  ...opts,
  async fn() {
    const fresh = await freshDatabase("cols");
    const db = await openDb({ url: fresh.url });
    try {
      assert.equal(await main(["--database-url", fresh.url, "--no-seed"]), 0);
      const cols = await db.query<{ table_name: string; column_name: string; data_type: string }>(
        `SELECT table_name, column_name, data_type FROM information_schema.columns
         WHERE table_schema = 'public'
           AND table_name IN ('user_metadata', 'bytes_hourly', 'user_quota_limit')
         ORDER BY table_name, ordinal_position`,
      );
      const shape: Record<string, string[]> = {};
      for (const c of cols) {
        (shape[c.table_name] ??= []).push(`${c.column_name} ${c.data_type}`);
      }
      assert.deepEqual(shape, {
        bytes_hourly: [
          "timestamp timestamp without time zone",
          "id text",
          "value bigint",
          "type text",
        ],
        user_metadata: ["id text", "name text", "email text", "quota bigint"],
        user_quota_limit: [
          "email text",
          "usage bigint",
          "quota bigint",
          "timestamp timestamp without time zone",
        ],
      });
      const [{ n }] = await db.query<{ n: number }>("SELECT count(*) AS n FROM user_metadata");
      assert.equal(n, 0, "--no-seed seeds nothing");
    } finally {
      await db.close();
      await fresh.drop();
    }
  },
});

Deno.test({
  name: "provision --users loads a good CSV and refuses a bad one in one line per row, exit 1",
  ...opts,
  async fn() {
    const fresh = await freshDatabase("provcsv");
    const db = await openDb({ url: fresh.url });
    try {
      const good = await provision([
        "--database-url",
        fresh.url,
        "--users",
        `${testdata}users_good.csv`,
      ]);
      assert.equal(good.code, 0, good.stderr);
      assert.match(good.stdout, /users: .*users_good\.csv: 3 inserted, 1 updated/);
      assert.match(good.stdout, /done: user_metadata holds 23 users/);

      const bad = await provision([
        "--database-url",
        fresh.url,
        "--users",
        `${testdata}users_bad.csv`,
      ]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /^error: users_bad\.csv: 9 bad row\(s\), nothing was loaded:\n/);
      assert.match(bad.stderr, /\nusers_bad\.csv:4: name is empty\n/);
      assert.doesNotMatch(bad.stderr, /\s+at /, "no stack trace");
      const [{ n }] = await db.query<{ n: number }>("SELECT count(*) AS n FROM user_metadata");
      assert.equal(n, 23);

      const wrong = await provision(["--database-url", "postgres://postgres@127.0.0.1:1/nope"]);
      assert.equal(wrong.code, 1);
      assert.equal(
        wrong.stderr.trim(),
        "error: Cannot connect to postgres://postgres@127.0.0.1:1/nope: connection refused (is PostgreSQL running?)",
      );
    } finally {
      await db.close();
      await fresh.drop();
    }
  },
});
