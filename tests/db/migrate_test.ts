/**
 * migrate(): ordered, once-only, checksummed and safe to run from several
 * processes at once, on real PostgreSQL.
 */
import assert from "node:assert/strict";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import { readMigrations } from "../../src/db/migrate.ts";
import { UserError } from "../../src/errors.ts";
import { freshDatabase } from "../_support/services.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

async function withDb(fn: (db: Db, url: string) => Promise<void>) {
  const fresh = await freshDatabase("mig");
  const db = await openDb({ url: fresh.url });
  try {
    await fn(db, fresh.url);
  } finally {
    await db.close();
    await fresh.drop();
  }
}

async function sqlDir(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "sql_" });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  return dir;
}

Deno.test({
  name: "migrate() applies files in version order once, and again is a no-op",
  ...opts,
  async fn() {
    const dir = await sqlDir({
      "010_second.sql": "INSERT INTO m_t VALUES (2);",
      "002_first.sql": "CREATE TABLE m_t (v INT); INSERT INTO m_t VALUES (1);",
      "README.md": "not a migration",
    });
    try {
      await withDb(async (db) => {
        assert.deepEqual((await migrate(db, dir)).applied, ["002_first.sql", "010_second.sql"]);
        assert.deepEqual((await migrate(db, dir)).applied, []);
        assert.deepEqual(await db.query("SELECT v FROM m_t ORDER BY v"), [{ v: 1 }, { v: 2 }]);
        const rows = await db.query<{ version: number; name: string; applied_at: Date }>(
          "SELECT version, name, applied_at FROM schema_migrations ORDER BY version",
        );
        assert.deepEqual(rows.map((r) => [r.version, r.name]), [[2, "first"], [10, "second"]]);
        assert.ok(rows[0].applied_at instanceof Date);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "migrate() refuses an applied file whose text changed, naming the file",
  ...opts,
  async fn() {
    const dir = await sqlDir({ "001_a.sql": "CREATE TABLE m_a (v INT);" });
    try {
      await withDb(async (db) => {
        await migrate(db, dir);
        await Deno.writeTextFile(`${dir}/001_a.sql`, "CREATE TABLE m_a (v BIGINT);");
        await Deno.writeTextFile(`${dir}/002_b.sql`, "CREATE TABLE m_b (v INT);");
        await assert.rejects(migrate(db, dir), (e: Error) => {
          assert.ok(e instanceof UserError);
          assert.match(e.message, /001_a\.sql was changed after it was applied/);
          return true;
        });
        // Nothing after the refusal was applied.
        const [r] = await db.query<{ n: number }>(
          "SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'm_b'",
        );
        assert.equal(r.n, 0);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "migrate() rolls back a failing file and records nothing for it",
  ...opts,
  async fn() {
    const dir = await sqlDir({
      "001_ok.sql": "CREATE TABLE m_ok (v INT);",
      "002_bad.sql": "CREATE TABLE m_bad (v INT); SELECT * FROM missing_table;",
    });
    try {
      await withDb(async (db) => {
        await assert.rejects(migrate(db, dir), /002_bad\.sql failed: .*missing_table/);
        const tables = await db.query<{ t: string }>(
          "SELECT table_name AS t FROM information_schema.tables WHERE table_name LIKE 'm\\_%' ORDER BY 1",
        );
        assert.deepEqual(tables, [{ t: "m_ok" }]);
        const versions = await db.query("SELECT version FROM schema_migrations");
        assert.deepEqual(versions, [{ version: 1 }]);
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "migrate() refuses a badly named .sql file and duplicate versions",
  ...opts,
  async fn() {
    const bad = await sqlDir({ "1-init.sql": "SELECT 1;" });
    const dup = await sqlDir({ "001_a.sql": "SELECT 1;", "001_b.sql": "SELECT 1;" });
    try {
      await withDb(async (db) => {
        await assert.rejects(migrate(db, bad), /1-init\.sql: a migration file must be named/);
        await assert.rejects(migrate(db, dup), /001_a\.sql and 001_b\.sql have the same version 1/);
      });
    } finally {
      await Deno.remove(bad, { recursive: true });
      await Deno.remove(dup, { recursive: true });
    }
  },
});

Deno.test({
  name: "migrate() from several processes at once applies each file exactly once",
  ...opts,
  async fn() {
    // A non-idempotent script: applying it twice would fail on the primary key.
    const dir = await sqlDir({
      "001_t.sql": "CREATE TABLE m_once (k INT PRIMARY KEY); INSERT INTO m_once VALUES (1);",
      "002_slow.sql": "SELECT pg_sleep(0.2); INSERT INTO m_once VALUES (2);",
    });
    try {
      await withDb(async (db, url) => {
        const others = await Promise.all([1, 2, 3].map(() => openDb({ url, maxConnections: 2 })));
        try {
          const results = await Promise.all([db, ...others].map((d) => migrate(d, dir)));
          const all = results.flatMap((r) => r.applied).sort();
          assert.deepEqual(all, ["001_t.sql", "002_slow.sql"]);
          assert.deepEqual(await db.query("SELECT k FROM m_once ORDER BY k"), [{ k: 1 }, { k: 2 }]);
        } finally {
          await Promise.all(others.map((d) => d.close()));
        }
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "migrate() takes a database at 005 to 006: speed_partials keeps its key and a BRIN index",
  ...opts,
  async fn() {
    const upTo005 = await Deno.makeTempDir({ prefix: "sql_005_" });
    for (const m of await readMigrations()) {
      if (m.version <= 5) await Deno.writeTextFile(`${upTo005}/${m.file}`, m.sql);
    }
    const indexes = async (db: Db) =>
      (await db.query<{ indexname: string }>(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'speed_partials' ORDER BY indexname",
      )).map((r) => r.indexname);
    try {
      await withDb(async (db) => {
        await migrate(db, upTo005);
        assert.deepEqual(await indexes(db), [
          "speed_partials_pkey",
          "speed_partials_type_id_hour_idx",
          "speed_partials_type_time_idx",
        ]);
        await db.query(
          `INSERT INTO speed_partials (type, "timestamp", id, "partition", value, window_end)
           VALUES ('m', '2026-11-28 10:00', 'a', 0, 1, '2026-11-28 10:05')`,
        );
        assert.ok((await migrate(db)).applied.includes("006_speed_partials_brin.sql"));
        assert.deepEqual(await indexes(db), ["speed_partials_pkey", "speed_partials_time_brin"]);
        const [{ n }] = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM speed_partials WHERE "timestamp" >= '2026-11-28'`,
        );
        assert.equal(n, 1);
      });
    } finally {
      await Deno.remove(upTo005, { recursive: true });
    }
  },
});
