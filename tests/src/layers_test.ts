/**
 * How the folders of src/ stand on each other. Each folder has a rank; a
 * module imports modules of its own rank or below. An import that runs up
 * (a lower rank importing a higher one) is a loop waiting to happen: at most
 * three are allowed, each listed here with why, so a new one fails the test
 * until it is removed or argued for. Imports into another folder go through
 * its front door (`mod.ts`) or a file the folder exports for that purpose.
 */
import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";

const SRC = new URL("../../src/", import.meta.url).pathname;

/** Lowest first: a folder may import its own rank and below. Files directly in src/ are rank 0. */
export const RANKS: Readonly<Record<string, number>> = {
  "": 0, // errors.ts, log.ts, metrics.ts, holder.ts
  async: 0,
  core: 1,
  config: 2,
  db: 3,
  lake: 3,
  stack: 3,
  speed: 4,
  kafka: 5,
  simulator: 5,
  batch: 6,
  alerts: 7,
  backfill: 7,
  api: 8,
  runtime: 9,
  cli: 10,
};

/** The upward imports that are allowed, as `from → to` file pairs, with their reason. */
const ALLOWED: Readonly<Record<string, string>> = {};

interface Import {
  readonly from: string;
  readonly to: string;
}

async function imports(): Promise<Import[]> {
  const out: Import[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(p);
      else if (p.endsWith(".ts")) {
        const text = await Deno.readTextFile(p);
        for (const m of text.matchAll(/(?:from|import)\s+"(\.{1,2}\/[^"]+)"/g)) {
          out.push({ from: relative(SRC, p), to: relative(SRC, join(dirname(p), m[1])) });
        }
      }
    }
  };
  await walk(SRC);
  return out;
}

const folderOf = (file: string) => file.includes("/") ? file.split("/")[0] : "";

Deno.test("every folder of src/ has a rank", async () => {
  const folders = new Set((await imports()).map((i) => folderOf(i.from)));
  assert.deepEqual([...folders].filter((f) => !(f in RANKS)).sort(), []);
});

Deno.test("at most three imports run up the layers, each argued for", async () => {
  const up = (await imports()).filter((i) => RANKS[folderOf(i.to)] > RANKS[folderOf(i.from)]).map((
    i,
  ) => `${i.from} → ${i.to}`);
  assert.deepEqual(up.filter((u) => !(u in ALLOWED)).sort(), []);
  assert.ok(Object.keys(ALLOWED).length <= 3, "more than three upward imports allowed");
  // An allowance whose import is gone is removed, so the list stays the truth.
  assert.deepEqual(Object.keys(ALLOWED).filter((a) => !up.includes(a)), []);
});

Deno.test("imports into another folder go through its front door or a public file", async () => {
  const private_ = (await imports()).filter((i) =>
    folderOf(i.from) !== folderOf(i.to) && /(^|\/)_[^/]+\.ts$/.test(i.to)
  ).map((i) => `${i.from} → ${i.to}`);
  assert.deepEqual(private_, []);
});
