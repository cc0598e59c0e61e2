/**
 * The ObjectStore contract, run against a temporary folder (LocalStore) and
 * fake-gcs-server (GcsStore). Both must behave the same for every case.
 */
import assert from "node:assert/strict";
import {
  GcsStore,
  LocalStore,
  type ObjectStore,
  openStore,
  StoreError,
} from "../../src/lake/mod.ts";
import { gcsEndpoint, uniqueName } from "../_support/services.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

interface Subject {
  name: string;
  make(): Promise<{ store: ObjectStore; cleanup(): Promise<void> }>;
}

const subjects: Subject[] = [
  {
    name: "LocalStore",
    async make() {
      const dir = await Deno.makeTempDir({ prefix: "lake_store_" });
      return {
        store: new LocalStore(dir),
        cleanup: () => Deno.remove(dir, { recursive: true }),
      };
    },
  },
  {
    name: "GcsStore",
    make() {
      const bucket = uniqueName("lake").replaceAll("_", "-");
      return Promise.resolve({
        // A small page size so listing crosses several pages.
        store: new GcsStore({
          bucket,
          prefix: "lake/raw",
          apiEndpoint: gcsEndpoint(),
          pageSize: 7,
        }),
        cleanup: () => Promise.resolve(),
      });
    },
  },
];

async function rejectsWith(p: Promise<unknown>, kind: string, op: string, key: string) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof StoreError, `expected StoreError, got ${err}`);
    assert.equal(err.kind, kind);
    assert.equal(err.op, op);
    assert.equal(err.key, key);
    assert.match(err.message, new RegExp(key.replaceAll(/[.=/]/g, ".")));
    return true;
  });
}

for (const subject of subjects) {
  const t = (name: string, fn: (store: ObjectStore) => Promise<void>) =>
    Deno.test(`${subject.name} ${name}`, async () => {
      const { store, cleanup } = await subject.make();
      try {
        await fn(store);
      } finally {
        await cleanup();
      }
    });

  t("put() then get(), size() and read() return the bytes", async (store) => {
    const key = "year=2026/month=11/day=28/hour=10/a.bin";
    await store.put(key, enc("0123456789"));
    assert.equal(dec(await store.get(key)), "0123456789");
    assert.equal(await store.size(key), 10);
    assert.equal(dec(await store.read(key, 2, 5)), "234");
    assert.equal(dec(await store.read(key, 7, 10)), "789");
    assert.equal((await store.read(key, 4, 4)).length, 0);
  });

  t("put() overwrites by default", async (store) => {
    await store.put("k/x", enc("one"));
    await store.put("k/x", enc("two!"));
    assert.equal(dec(await store.get("k/x")), "two!");
    assert.equal(await store.size("k/x"), 4);
  });

  t("put({ ifAbsent }) fails with kind 'exists' when the key exists", async (store) => {
    await store.put("k/once", enc("first"), { ifAbsent: true });
    await rejectsWith(
      store.put("k/once", enc("second"), { ifAbsent: true }),
      "exists",
      "put",
      "k/once",
    );
    assert.equal(dec(await store.get("k/once")), "first");
  });

  t("get(), read() and size() of a missing key fail with kind 'not_found'", async (store) => {
    await store.put("present", enc("x")); // the bucket/folder exists
    await rejectsWith(store.get("no/such"), "not_found", "get", "no/such");
    await rejectsWith(store.read("no/such", 0, 1), "not_found", "read", "no/such");
    await rejectsWith(store.size("no/such"), "not_found", "size", "no/such");
  });

  t("delete() removes, and a missing key is not an error", async (store) => {
    await store.put("d/1", enc("x"));
    await store.delete("d/1");
    await store.delete("d/1");
    await store.delete("never/there");
    assert.deepEqual(await store.list("d/"), []);
  });

  t("list() is recursive, sorted, filtered by prefix, and pages", async (store) => {
    const keys: string[] = [];
    for (let h = 0; h < 3; h++) {
      for (let i = 0; i < 9; i++) keys.push(`year=2026/month=01/day=02/hour=0${h}/f${i}.parquet`);
    }
    keys.push("_staging/p0000.json", "year=2026/month=01/day=020/x");
    await Promise.all([...keys].reverse().map((k) => store.put(k, enc(k))));
    const hour1 = await store.list("year=2026/month=01/day=02/hour=01/");
    assert.deepEqual(hour1.map((e) => e.key), keys.filter((k) => k.includes("hour=01/")));
    assert.ok(hour1.every((e) => e.size === e.key.length));
    const day = await store.list("year=2026/month=01/day=02/");
    assert.equal(day.length, 27);
    const all = await store.list("");
    assert.deepEqual(all.map((e) => e.key), [...keys].sort());
    assert.deepEqual(await store.list("year=1999/"), []);
  });

  t("rejects keys that could escape the root", async (store) => {
    for (const bad of ["", "/abs", "a/../b", "a//b", "dir/"]) {
      await assert.rejects(store.put(bad, enc("x")), TypeError);
    }
  });
}

Deno.test("LocalStore put() leaves no temporary file behind", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lake_store_" });
  try {
    const store = new LocalStore(dir);
    await store.put("h/a", enc("x"));
    await assert.rejects(store.put("h/a", enc("y"), { ifAbsent: true }));
    const names = [...Deno.readDirSync(`${dir}/h`)].map((e) => e.name);
    assert.deepEqual(names, ["a"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("GcsStore keeps keys under its prefix and lists past 1000 keys", async () => {
  const bucket = uniqueName("lake").replaceAll("_", "-");
  const store = new GcsStore({ bucket, prefix: "p", apiEndpoint: gcsEndpoint() });
  const other = new GcsStore({ bucket, apiEndpoint: gcsEndpoint() });
  const n = 1005;
  const keys = Array.from({ length: n }, (_, i) => `many/k${String(i).padStart(5, "0")}`);
  for (let i = 0; i < n; i += 50) {
    await Promise.all(keys.slice(i, i + 50).map((k) => store.put(k, enc("v"))));
  }
  const listed = await store.list("many/");
  assert.equal(listed.length, n);
  assert.deepEqual(listed.map((e) => e.key), keys);
  assert.equal((await other.list("p/many/")).length, n);
});

Deno.test("openStore() opens a file:// lake, creating its folder", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lake_store_" });
  try {
    const root = `${dir}/nested/lake`;
    const store = openStore({
      uri: `file://${root}`,
      kind: "file",
      root,
      prefix: "",
      roll: { maxRows: 1, maxBytes: 1, maxAgeMs: 1 },
      compaction: { enabled: false, afterMs: 0, copyMinRows: 20_000 },
    });
    assert.ok(Deno.statSync(root).isDirectory);
    await store.put("a/b", enc("x"));
    assert.equal(dec(Deno.readFileSync(`${root}/a/b`)), "x");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openStore() opens a gs:// lake on the emulator, creating the bucket", async () => {
  const bucket = uniqueName("lake").replaceAll("_", "-");
  const store = openStore({
    uri: `gs://${bucket}/raw`,
    kind: "gcs",
    root: bucket,
    prefix: "raw",
    gcsEndpoint: gcsEndpoint(),
    gcsProjectId: "test",
    roll: { maxRows: 1, maxBytes: 1, maxAgeMs: 1 },
    compaction: { enabled: false, afterMs: 0, copyMinRows: 20_000 },
  });
  assert.equal(store.uri, `gs://${bucket}/raw`);
  await store.put("a/b", enc("x"));
  assert.deepEqual(await store.list(""), [{ key: "a/b", size: 1 }]);
});
