/**
 * Users CSV: the RFC 4180 reader, row validation that reports every bad line
 * and writes nothing, and the upsert of a good file on real PostgreSQL.
 */
import assert from "node:assert/strict";
import { loadUsersCsv, migrate, openDb } from "../../src/db/mod.ts";
import { seedUsers } from "../../src/simulator/users.ts";
import { parseCsv } from "../../src/db/_csv.ts";
import { parseUsersCsv } from "../../src/db/users_csv.ts";
import { UserError } from "../../src/errors.ts";
import { freshDatabase } from "../_support/services.ts";

const testdata = new URL("../testdata/", import.meta.url).pathname;
const opts = { sanitizeResources: false, sanitizeOps: false };

Deno.test("parseCsv() reads quotes, escaped quotes, CRLF, line breaks in fields and a BOM", () => {
  const recs = parseCsv('\uFEFFa,b\r\n"x, y","he said ""hi"""\n"two\nlines",\nlast,row');
  assert.deepEqual(recs, [
    { line: 1, fields: ["a", "b"] },
    { line: 2, fields: ["x, y", 'he said "hi"'] },
    { line: 3, fields: ["two\nlines", ""] },
    { line: 5, fields: ["last", "row"] },
  ]);
});

Deno.test("parseUsersCsv() rejects malformed quoting and a wrong header with the line", () => {
  const cases: [string, RegExp][] = [
    ['id,name,email,quota\n"open,x,y@z.io,1\n', /^u\.csv:2: a quoted field is not closed/],
    ['id,name,email,quota\nu,na"me,y@z.io,1\n', /^u\.csv:2: a quote inside an unquoted field/],
    ["id,name,mail,quota\n", /^u\.csv:1: the header must be "id,name,email,quota"/],
    ["", /^u\.csv: empty file/],
  ];
  for (const [text, want] of cases) {
    assert.throws(() => parseUsersCsv(text, "u.csv"), (e: Error) => {
      assert.ok(e instanceof UserError, text);
      assert.match(e.message, want);
      return true;
    });
  }
});

Deno.test("parseUsersCsv() lists every bad row with its line number", () => {
  const text = Deno.readTextFileSync(`${testdata}users_bad.csv`);
  assert.throws(() => parseUsersCsv(text, "users.csv"), (e: Error) => {
    assert.ok(e instanceof UserError);
    const lines = e.message.split("\n");
    assert.equal(lines[0], "users.csv: 9 bad row(s), nothing was loaded:");
    assert.deepEqual(lines.slice(1), [
      "users.csv:3: id is empty",
      "users.csv:4: name is empty",
      'users.csv:5: email "not-an-email" is not an e-mail address',
      'users.csv:6: quota "-5" is not a non-negative integer (bytes per hour)',
      'users.csv:7: quota "1.5" is not a non-negative integer (bytes per hour)',
      'users.csv:8: duplicate id "ok-1" (first on line 2)',
      "users.csv:9: expected 4 columns (id,name,email,quota), got 5",
      'users.csv:10: quota "9007199254740992" is larger than 9007199254740991',
      "users.csv:11: id is longer than 128 characters",
    ]);
    return true;
  });
});

Deno.test({
  name: "loadUsersCsv() writes nothing from a file with a bad row, and upserts a good file",
  ...opts,
  async fn() {
    const fresh = await freshDatabase("csv");
    const db = await openDb({ url: fresh.url });
    try {
      await migrate(db);
      await seedUsers(db, { devices: 3 });
      const snapshot = () => db.query("SELECT * FROM user_metadata ORDER BY id");
      const before = await snapshot();

      await assert.rejects(loadUsersCsv(db, `${testdata}users_bad.csv`), /users_bad\.csv:3: /);
      assert.deepEqual(await snapshot(), before, "a bad file changes nothing");
      await assert.rejects(
        loadUsersCsv(db, `${testdata}missing.csv`),
        /missing\.csv: no such file/,
      );

      assert.deepEqual(await loadUsersCsv(db, `${testdata}users_good.csv`), {
        inserted: 3,
        updated: 1,
      });
      const rows = await db.query(
        "SELECT id, name, email, quota FROM user_metadata WHERE id NOT LIKE '00000000-%' OR quota = 5000 ORDER BY id",
      );
      assert.deepEqual(rows, [
        {
          id: "00000000-0000-0000-0000-000000000001",
          name: "Renamed Device One",
          email: "one@example.com",
          quota: 5000,
        },
        { id: "u-1", name: "Ana Pérez", email: "ana@example.com", quota: 1_000_000 },
        { id: "u-2", name: "Smith, John", email: "john@example.com", quota: 0 },
        {
          id: "u-3",
          name: 'Multi\r\nLine "Quoted"',
          email: "multi@example.org",
          quota: Number.MAX_SAFE_INTEGER,
        },
      ]);
      // Loading it again updates the same rows: nothing is duplicated.
      assert.deepEqual(await loadUsersCsv(db, `${testdata}users_good.csv`), {
        inserted: 0,
        updated: 4,
      });
      const [{ n }] = await db.query<{ n: number }>("SELECT count(*) AS n FROM user_metadata");
      assert.equal(n, 6);
    } finally {
      await db.close();
      await fresh.drop();
    }
  },
});
