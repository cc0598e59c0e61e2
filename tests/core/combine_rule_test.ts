/**
 * The combine rule of src/core/aggregate.ts against the SQL that spells it on
 * real PostgreSQL: partial rows of every aggregation, written by the speed
 * sink in several flushes of several partitions (the upsert's combineSql),
 * then read through the `bytes` view (sql/002), serving_hourly (sql/007) and
 * the API's hourly queries and totals (src/api/_serving_sql.ts). Each must
 * give exactly what the core rule computes in TypeScript, so a view drifting
 * from the rule fails here.
 */
import assert from "node:assert/strict";
import { type Aggregation, AGGREGATIONS } from "../../src/core/vocabulary.ts";
import { AGGREGATION_RULES } from "../../src/core/mod.ts";
import { HOUR_MS } from "../../src/core/window.ts";
import { migrate, openDb } from "../../src/db/mod.ts";
import { createRandom } from "../../src/simulator/prng.ts";
import { type PartitionFlush, writeFlush } from "../../src/speed/sink.ts";
import type { WindowDelta } from "../../src/core/partition_windows.ts";
import { foldSql, mergedHourlySql, speedHourlySql } from "../../src/api/_serving_sql.ts";
import { freshDatabase } from "../_support/services.ts";

const H = Date.UTC(2026, 10, 28, 10);
const W = 300_000;
const HOURS = 2;
const WINDOWS = Array.from({ length: (HOURS * HOUR_MS) / W }, (_, i) => H + i * W);
const IDS = ["a", "b", "c"];
const PARTITIONS = [0, 1, 2];
const FLUSHES = 3;
const MEMBERS = ["m0", "m1", "m2", "m3", "m4", "m5"];
const typeOf = (a: Aggregation) => `rule_${a}`;

/** One group's partial as the core sees it: a number, or the members of count_distinct. */
type Partial = number | Set<string>;

/** Merges two partials of an aggregation with the core rule. */
function merge(a: Aggregation, x: Partial | undefined, y: Partial): Partial {
  if (x === undefined) return typeof y === "number" ? y : new Set(y);
  if (typeof x === "number") return AGGREGATION_RULES[a].combine(x, y as number);
  for (const m of y as Set<string>) x.add(m);
  return x;
}

/** `key` → merged partial, for rows grouped by `key`. */
function group(
  rows: Iterable<{ a: Aggregation; key: string; value: Partial }>,
): Map<string, { a: Aggregation; value: Partial }> {
  const out = new Map<string, { a: Aggregation; value: Partial }>();
  for (const r of rows) {
    out.set(r.key, { a: r.a, value: merge(r.a, out.get(r.key)?.value, r.value) });
  }
  return out;
}

/** A group's final value: the number, or how many distinct members. */
const final = (p: Partial) => (typeof p === "number" ? p : p.size);

/** Sorted `key value` lines, so a difference reads as a diff. */
const lines = (m: Map<string, number>) => [...m].map(([k, v]) => `${k} ${v}`).sort();
const linesOf = (m: Map<string, { value: Partial }>) =>
  lines(new Map([...m].map(([k, v]) => [k, final(v.value)])));

Deno.test("the core combine rule and the SQL folds (bytes, serving_hourly, API) agree", async () => {
  const fresh = await freshDatabase("combine_rule");
  const db = await openDb({ url: fresh.url, maxConnections: 2 });
  try {
    await migrate(db);
    await db.query(
      `INSERT INTO speed_metrics (type, aggregation, window_ms)
       SELECT unnest($1::text[]), unnest($2::text[]), $3`,
      [AGGREGATIONS.map(typeOf), [...AGGREGATIONS], W],
    );
    const aggregations = new Map(AGGREGATIONS.map((a) => [typeOf(a), a]));

    // Deltas of every flush of every partition, as the speed layer writes them.
    const rng = createRandom(10);
    const written: { a: Aggregation; t: number; id: string; p: number; value: Partial }[] = [];
    for (let f = 0; f < FLUSHES; f++) {
      const parts: PartitionFlush[] = PARTITIONS.map((p) => {
        const deltas: WindowDelta[] = [];
        for (const a of AGGREGATIONS) {
          for (const t of WINDOWS) {
            for (const id of IDS) {
              if (rng.next() < 0.3) continue; // not every group in every flush
              const base = { metric: typeOf(a), windowStart: t, key: id };
              if (a === "count_distinct") {
                const members = MEMBERS.filter(() => rng.next() < 0.3);
                if (members.length === 0) continue;
                deltas.push({ ...base, members });
                written.push({ a, t, id, p, value: new Set(members) });
              } else {
                const value = a === "count" ? 1 + rng.int(20) : rng.int(1_000_000);
                deltas.push({ ...base, value });
                written.push({ a, t, id, p, value });
              }
            }
          }
        }
        return {
          partition: p,
          deltas,
          letters: [],
          nextOffset: (f + 1) * 100,
          lakeOffset: (f + 1) * 100,
          clockMs: H + (HOURS + 1) * HOUR_MS,
          // Every window is written (visible) once the last flush commits.
          watermarkMs: f === FLUSHES - 1 ? H + (HOURS + 1) * HOUR_MS : H,
        };
      });
      await writeFlush(db, "devices", W, aggregations, parts);
    }
    const key = (a: Aggregation, t: number, id: string) => `${typeOf(a)} ${t} ${id}`;
    const hourOf = (t: number) => Math.floor(t / HOUR_MS) * HOUR_MS;

    // speed_partials: the upsert merged each partition's flushes (combineSql).
    const numeric = written.filter((w) => w.a !== "count_distinct");
    const stored = group(numeric.map((w) => ({ ...w, key: `${key(w.a, w.t, w.id)} ${w.p}` })));
    const storedRows = await db.query<{ k: string; value: number }>(
      `SELECT type || ' ' || (extract(epoch FROM "timestamp") * 1000)::bigint || ' ' || id
         || ' ' || "partition" AS k, value
       FROM speed_partials`,
    );
    assert.deepEqual(lines(new Map(storedRows.map((r) => [r.k, r.value]))), linesOf(stored));

    // bytes: one value per window, combined across partitions.
    const windows = group(written.map((w) => ({ ...w, key: key(w.a, w.t, w.id) })));
    const bytesRows = await db.query<{ k: string; value: number }>(
      `SELECT type || ' ' || (extract(epoch FROM "timestamp") * 1000)::bigint || ' ' || id AS k,
         value
       FROM bytes`,
    );
    assert.deepEqual(lines(new Map(bytesRows.map((r) => [r.k, r.value]))), linesOf(windows));

    // serving_hourly: the windows of each hour folded (no hour is batched).
    const hours = group(written.map((w) => ({ ...w, key: key(w.a, hourOf(w.t), w.id) })));
    const hourlyRows = await db.query<{ k: string; value: number; source: string }>(
      `SELECT type || ' ' || (extract(epoch FROM "timestamp") * 1000)::bigint || ' ' || id AS k,
         value, source
       FROM serving_hourly`,
    );
    assert.deepEqual(lines(new Map(hourlyRows.map((r) => [r.k, r.value]))), linesOf(hours));
    assert.deepEqual([...new Set(hourlyRows.map((r) => r.source))], ["speed"]);

    // The API: its hourly queries fold like serving_hourly, and its totals
    // fold hours with the rule (count_distinct: the largest hour).
    const range = [new Date(H), new Date(H + HOURS * HOUR_MS)];
    const api = (sql: string, a: Aggregation) =>
      db.query<{ k: string; value: number }>(
        `SELECT $1::text || ' ' || (extract(epoch FROM timestamp) * 1000)::bigint || ' ' || id
           AS k, value
         FROM (${sql}) s`,
        [typeOf(a), ...range, a],
      );
    for (const a of AGGREGATIONS) {
      const expected = new Map([...hours].filter(([, v]) => v.a === a));
      for (
        const [name, sql] of [
          ["speedHourlySql", speedHourlySql({ fold: "$4" })],
          ["mergedHourlySql", mergedHourlySql({ fold: "$4" })],
        ]
      ) {
        const rows = await api(sql, a);
        assert.deepEqual(
          lines(new Map(rows.map((r) => [r.k, r.value]))),
          linesOf(expected),
          `${name} of ${a}`,
        );
      }

      const totals = new Map<string, number>();
      for (const [k, v] of expected) {
        const id = k.split(" ")[2];
        const prev = totals.get(id);
        const value = final(v.value);
        totals.set(id, prev === undefined ? value : AGGREGATION_RULES[a].combine(prev, value));
      }
      const totalRows = await db.query<{ id: string; total: number }>(
        `SELECT id, ${foldSql("$4")} AS total FROM (${mergedHourlySql({ fold: "$4" })}) m
         GROUP BY id`,
        [typeOf(a), ...range, a],
      );
      assert.deepEqual(
        lines(new Map(totalRows.map((r) => [r.id, r.total]))),
        lines(totals),
        `foldSql totals of ${a}`,
      );
    }
  } finally {
    await db.close();
    await fresh.drop();
  }
});
