/**
 * The array literals the speed sink sends as statement parameters, read back by
 * a real PostgreSQL: every value arrives unchanged, whichever path (plain join
 * or escaped) built the literal.
 */
import assert from "node:assert/strict";
import postgres from "postgres";
import { intArray, textArray } from "../../src/speed/sink.ts";
import { pgAdminUrl } from "../_support/services.ts";

Deno.test("text[] and bigint[] literals round-trip through PostgreSQL", async () => {
  const sql = postgres(pgAdminUrl(), { max: 1, onnotice: () => {} });
  try {
    const cases: (string | null)[][] = [
      ["user_bytes_total", "3f1c9a4e-8b2d-4c6e-9f00-1a2b3c4d5e6f"],
      ["SKYPE", "a,b", "{braces}", " spaced ", "NULL", ""],
      ['say "hi"', "back\\slash", 'both \\"', "ünïcødé"],
      ["x", null, "y"],
      [],
    ];
    for (const values of cases) {
      // Element by element (unnest): postgres.js reads a NULL inside a text[] result as "NULL".
      const rows = await sql.unsafe(
        `SELECT v FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i`,
        [textArray(values)],
      );
      assert.deepEqual(rows.map((r) => r.v), values, `literal ${textArray(values)}`);
    }
    const ints = [0, -1, 9007199254740991, null];
    const rows = await sql.unsafe(
      `SELECT v::text FROM unnest($1::bigint[]) WITH ORDINALITY AS u(v, i) ORDER BY i`,
      [intArray(ints)],
    );
    assert.deepEqual(rows.map((r) => r.v), ["0", "-1", "9007199254740991", null]);
  } finally {
    await sql.end();
  }
});
