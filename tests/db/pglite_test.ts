/**
 * The embedded database: persisted in a folder across reopen, guarded against
 * a second opener, and served over the wire protocol to postgres.js and psql
 * without letting in-process writes slip into a client's transaction.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import postgres from "postgres";
import { migrate, openDb, serveEmbedded } from "../../src/db/mod.ts";
import { seedUsers } from "../../src/simulator/users.ts";
import { UserError } from "../../src/errors.ts";

const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  name: "openDb() without url persists the embedded database across reopen",
  ...opts,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "pglite_" });
    const dir = `${tmp}/db`; // does not exist yet: openDb creates it
    try {
      const first = await openDb({ embeddedDir: dir });
      assert.equal(first.kind, "pglite");
      assert.ok((await migrate(first)).applied.includes("001_base.sql"));
      // Every migration runs on PGlite too, BRIN index included (sql/006).
      const idx = await first.query<{ indexname: string }>(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'speed_partials' ORDER BY indexname",
      );
      assert.deepEqual(idx.map((r) => r.indexname), [
        "speed_partials_pkey",
        "speed_partials_time_brin",
      ]);
      assert.equal(await seedUsers(first, { devices: 7 }), 7);
      await assert.rejects(openDb({ embeddedDir: dir }), UserError, "a second opener is refused");
      await first.close();

      const again = await openDb({ embeddedDir: dir });
      try {
        assert.deepEqual((await migrate(again)).applied, []);
        const [r] = await again.query<{ n: number }>("SELECT count(*) AS n FROM user_metadata");
        assert.equal(r.n, 7);
      } finally {
        await again.close();
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "serveEmbedded() serves provisioned tables to postgres.js and psql",
  ...opts,
  async fn() {
    const db = await openDb({});
    await migrate(db);
    await seedUsers(db, { devices: 20 });
    const server = await serveEmbedded(db, { host: "127.0.0.1", port: 0 });
    const client = postgres(server.url, { max: 1, onnotice: () => {} });
    try {
      assert.match(server.url, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/);
      const rows = await client`SELECT id, email, quota FROM user_metadata ORDER BY id LIMIT 2`;
      assert.deepEqual([...rows].map((r) => r.email), ["user1@example.com", "user2@example.com"]);

      const psql = await new Deno.Command("psql", {
        args: [server.url, "-X", "-At", "-c", "SELECT count(*) FROM user_metadata"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(psql.stderr);
      assert.equal(psql.code, 0, err);
      assert.equal(new TextDecoder().decode(psql.stdout).trim(), "20");
    } finally {
      await client.end();
      await server.close();
      await db.close();
    }
  },
});

Deno.test({
  name: "serveEmbedded() keeps in-process writes out of a client's open transaction",
  ...opts,
  async fn() {
    const db = await openDb({});
    await db.exec("CREATE TABLE gate_t (k TEXT PRIMARY KEY)");
    const server = await serveEmbedded(db, { host: "127.0.0.1", port: 0 });
    const client = postgres(server.url, { max: 1, onnotice: () => {} });
    try {
      let inProcess: Promise<unknown> | undefined;
      let settled = false;
      await assert.rejects(
        client.begin(async (tx) => {
          await tx`INSERT INTO gate_t VALUES ('socket')`;
          inProcess = db.query("INSERT INTO gate_t VALUES ($1)", ["in-process"]).then(() => {
            settled = true;
          });
          await delay(300);
          assert.equal(settled, false, "the in-process write waits for the transaction");
          throw new Error("client rolls back");
        }),
        /client rolls back/,
      );
      await inProcess;
      const rows = await db.query<{ k: string }>("SELECT k FROM gate_t ORDER BY k");
      assert.deepEqual(rows, [{ k: "in-process" }]);
      // The session is usable by the client again afterwards.
      assert.equal((await client`SELECT count(*)::int AS n FROM gate_t`)[0].n, 1);
    } finally {
      await client.end();
      await server.close();
      await db.close();
    }
  },
});

Deno.test({
  name: "serveEmbedded() answers several pooled clients' concurrent queries correctly",
  ...opts,
  async fn() {
    const db = await openDb({});
    const server = await serveEmbedded(db, { host: "127.0.0.1", port: 0 });
    // Two pools of extended-protocol clients, like Superset's several connections.
    const a = postgres(server.url, { max: 3, onnotice: () => {} });
    const b = postgres(server.url, { max: 3, onnotice: () => {} });
    try {
      const jobs: Promise<void>[] = [];
      for (let i = 0; i < 40; i++) {
        const client = i % 2 ? a : b;
        jobs.push((async () => {
          const [r] = await client`SELECT ${i}::int AS i, repeat('x', ${i})::text AS s`;
          assert.deepEqual({ i: r.i, s: r.s }, { i, s: "x".repeat(i) });
        })());
        jobs.push(
          db.query<{ n: number }>("SELECT $1::int AS n", [i]).then(([r]) => {
            assert.equal(r.n, i);
          }),
        );
      }
      await Promise.all(jobs);
    } finally {
      await a.end();
      await b.end();
      await server.close();
      await db.close();
    }
  },
});
