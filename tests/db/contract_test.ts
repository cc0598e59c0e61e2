/**
 * The one contract both `Db` backends must keep: the same SQL gives the same JS
 * values on real PostgreSQL (postgres.js) and on embedded PGlite. Every case
 * runs against both.
 */
import assert from "node:assert/strict";
import { type Db, openDb } from "../../src/db/mod.ts";
import { freshDatabase } from "../_support/services.ts";

type Case = [name: string, run: (db: Db) => Promise<void>];

const cases: Case[] = [
  ["query() binds $n parameters", async (db) => {
    const rows = await db.query<{ a: string; b: number; c: null }>(
      "SELECT $1::text AS a, $2::int AS b, $3::text AS c",
      ["x'; DROP TABLE t; --", 42, null],
    );
    assert.deepEqual(rows, [{ a: "x'; DROP TABLE t; --", b: 42, c: null }]);
  }],
  ["query() takes arrays for unnest($1::text[], $2::bigint[])", async (db) => {
    const rows = await db.query<{ k: string; v: number }>(
      "SELECT k, v FROM unnest($1::text[], $2::bigint[]) AS u(k, v) ORDER BY k",
      [["b", "a"], [5_000_000_000, 1]],
    );
    assert.deepEqual(rows, [{ k: "a", v: 1 }, { k: "b", v: 5_000_000_000 }]);
  }],
  ["BIGINT above 2^31 round-trips as a number, above 2^53 as a bigint", async (db) => {
    await db.exec("CREATE TABLE c_big (v BIGINT)");
    await db.query("INSERT INTO c_big VALUES ($1), ($2)", [3_000_000_000, 4_000_000_000]);
    const [r] = await db.query<{ s: unknown; m: unknown; n: unknown; big: unknown }>(
      `SELECT sum(v) AS s, max(v) AS m, count(*) AS n,
              9223372036854775807::bigint AS big FROM c_big`,
    );
    assert.deepEqual(r, { s: 7_000_000_000, m: 4_000_000_000, n: 2, big: 9223372036854775807n });
    const [a] = await db.query<{ avg: unknown; ints: unknown }>(
      "SELECT avg(v) AS avg, array_agg(v ORDER BY v) AS ints FROM c_big",
    );
    assert.deepEqual(a, { avg: 3_500_000_000, ints: [3_000_000_000, 4_000_000_000] });
  }],
  ["TIMESTAMP is UTC both ways; TIMESTAMPTZ is the instant", async (db) => {
    await db.exec("CREATE TABLE c_ts (t TIMESTAMP, tz TIMESTAMPTZ)");
    const when = new Date("2026-11-28T10:05:00.123Z");
    await db.query("INSERT INTO c_ts VALUES ($1, $2)", [when, when]);
    const [r] = await db.query<{ t: Date; tz: Date; text: string }>(
      "SELECT t, tz, t::text AS text FROM c_ts",
    );
    assert.ok(r.t instanceof Date && r.tz instanceof Date);
    assert.equal(r.t.toISOString(), when.toISOString());
    assert.equal(r.tz.toISOString(), when.toISOString());
    assert.equal(r.text, "2026-11-28 10:05:00.123");
    const [e] = await db.query<{ t: Date }>("SELECT to_timestamp(1600545287)::timestamp AS t");
    assert.equal(e.t.toISOString(), "2020-09-19T19:54:47.000Z");
  }],
  ["transaction() commits its result and rolls back when fn throws", async (db) => {
    await db.exec("CREATE TABLE c_tx (k TEXT PRIMARY KEY)");
    const out = await db.transaction(async (tx) => {
      await tx.query("INSERT INTO c_tx VALUES ($1)", ["kept"]);
      return 7;
    });
    assert.equal(out, 7);
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query("INSERT INTO c_tx VALUES ($1)", ["lost"]);
        throw new Error("boom");
      }),
      /boom/,
    );
    await assert.rejects(db.transaction(async (tx) => {
      await tx.query("INSERT INTO c_tx VALUES ($1)", ["lost too"]);
      await tx.query("INSERT INTO c_tx VALUES ($1)", ["kept"]); // unique violation
    }));
    const rows = await db.query<{ k: string }>("SELECT k FROM c_tx ORDER BY k");
    assert.deepEqual(rows, [{ k: "kept" }]);
  }],
  ["ON CONFLICT upserts", async (db) => {
    await db.exec("CREATE TABLE c_up (k TEXT PRIMARY KEY, v BIGINT NOT NULL)");
    const upsert = `INSERT INTO c_up SELECT * FROM unnest($1::text[], $2::bigint[])
      ON CONFLICT (k) DO UPDATE SET v = c_up.v + excluded.v`;
    await db.query(upsert, [["a", "b"], [1, 2]]);
    await db.query(upsert, [["a"], [10]]);
    assert.deepEqual(await db.query("SELECT k, v FROM c_up ORDER BY k"), [
      { k: "a", v: 11 },
      { k: "b", v: 2 },
    ]);
  }],
  ["pg_try_advisory_xact_lock() is available in a transaction", async (db) => {
    const got = await db.transaction(async (tx) => {
      const [r] = await tx.query<{ ok: boolean }>(
        "SELECT pg_try_advisory_xact_lock($1::bigint) AS ok",
        [424242],
      );
      return r.ok;
    });
    assert.equal(got, true);
  }],
  ["exec() runs a script of several statements", async (db) => {
    await db.exec(
      `CREATE TABLE c_ex (a INT); INSERT INTO c_ex VALUES (1); INSERT INTO c_ex VALUES (2);`,
    );
    assert.deepEqual(await db.query("SELECT count(*)::int AS n FROM c_ex"), [{ n: 2 }]);
  }],
  ["a failing query rejects with the server's message", async (db) => {
    await assert.rejects(db.query("SELECT * FROM no_such_table"), /no_such_table/);
    // ...and the connection or session is still usable afterwards.
    assert.deepEqual(await db.query("SELECT 1 AS one"), [{ one: 1 }]);
  }],
];

function suite(name: string, open: () => Promise<{ db: Db; done(): Promise<void> }>) {
  Deno.test({
    name,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn(t) {
      const { db, done } = await open();
      try {
        for (const [caseName, run] of cases) await t.step(caseName, () => run(db));
      } finally {
        await done();
      }
    },
  });
}

suite("Db contract: pglite", async () => {
  const db = await openDb({});
  assert.equal(db.kind, "pglite");
  return { db, done: () => db.close() };
});

suite("Db contract: postgres", async () => {
  const fresh = await freshDatabase("dbc");
  const db = await openDb({ url: fresh.url });
  assert.equal(db.kind, "postgres");
  return {
    db,
    async done() {
      await db.close();
      await fresh.drop();
    },
  };
});
