/**
 * LakeWriter: rolling by rows, size and age, file names that a replay
 * reproduces, crash recovery through segment intents, and the round trip
 * writer → Parquet → readHour on a local folder and on fake-gcs-server.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { parquetMetadata } from "hyparquet";
import type { SourcedEvent } from "../../src/core/event.ts";
import {
  GcsStore,
  hourPath,
  LakeWriter,
  type LakeWriterOptions,
  LocalStore,
  type ObjectStore,
  parseFileName,
  readHour,
  segmentFileName,
} from "../../src/lake/mod.ts";
import { Registry } from "../../src/metrics.ts";
import type { Logger } from "../../src/log.ts";
import { gcsEndpoint, uniqueName } from "../_support/services.ts";

const H10 = Date.UTC(2026, 10, 28, 10);
const noop = () => {};
const quiet: Logger = { debug: noop, info: noop, warn: noop, error: noop, child: () => quiet };
const BIG = { maxRows: 1_000_000, maxBytes: 1e12, maxAgeMs: 3_600_000 };

/** `n` events of `partition` from `from`, one a second from `startMs`. */
function events(partition: number, from: number, n: number, startMs = H10): SourcedEvent[] {
  return Array.from({ length: n }, (_, i) => {
    const offset = from + i;
    return {
      partition,
      offset,
      timestamp: (startMs + offset * 1000) / 1000,
      id: `dev-${offset % 7}`,
      antenna_id: `ant-${offset % 3}`,
      app: ["mail", "video", "web"][offset % 3],
      bytes: offset * 1000 + 1,
    };
  });
}

function writer(store: ObjectStore, roll: LakeWriterOptions["roll"], clock?: () => number) {
  return new LakeWriter({
    store,
    roll,
    clock,
    registry: new Registry(),
    log: quiet,
    retry: { initialMs: 5, maxMs: 20 },
  });
}

async function tempStore(): Promise<
  { store: LocalStore; dir: string; [Symbol.asyncDispose](): Promise<void> }
> {
  const dir = await Deno.makeTempDir({ prefix: "lake_writer_" });
  return {
    store: new LocalStore(dir),
    dir,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function gcsStore(): GcsStore {
  return new GcsStore({
    bucket: uniqueName("lakew").replaceAll("_", "-"),
    prefix: "raw",
    apiEndpoint: gcsEndpoint(),
  });
}

/** Lake file listing (intents excluded). */
async function lakeFiles(store: ObjectStore): Promise<string[]> {
  return (await store.list("year=")).map((e) => e.key);
}

const name = (p: number, a: number, b: number) => segmentFileName(p, a, b);

for (const kind of ["local", "gcs"] as const) {
  Deno.test(`LakeWriter round trip on ${kind}: paths, Parquet types, rows`, async () => {
    await using tmp = await tempStore();
    const store = kind === "local" ? tmp.store : gcsStore();
    const w = writer(store, BIG);
    await w.recover(2, 0);
    // 3,540 s after 10:00 → the events cross into hour 11.
    const evs = events(2, 3540, 120);
    w.append(evs);
    assert.equal(w.durableOffset(2), 3540);
    await w.flush();
    assert.equal(w.durableOffset(2), 3660);
    const file = name(2, 3540, 3659);
    assert.deepEqual(await lakeFiles(store), [
      hourPath(H10) + file,
      hourPath(H10 + 3_600_000) + file,
    ]);
    assert.equal(hourPath(H10), "year=2026/month=11/day=28/hour=10/");

    const meta = parquetMetadata((await store.get(hourPath(H10) + file)).buffer as ArrayBuffer);
    const el = (n: string) => meta.schema.find((e) => e.name === n)!;
    assert.deepEqual(el("timestamp").logical_type, {
      type: "TIMESTAMP",
      isAdjustedToUTC: true,
      unit: "MILLIS",
    });
    assert.equal(el("timestamp").type, "INT64");
    assert.equal(el("bytes").type, "INT64");
    assert.equal(el("offset").type, "INT64");
    assert.equal(el("partition").type, "INT32");
    for (const s of ["id", "antenna_id", "app"]) {
      assert.equal(el(s).type, "BYTE_ARRAY");
      assert.deepEqual(el(s).logical_type, { type: "STRING" });
    }
    assert.equal(Number(meta.num_rows), 60);

    const h10 = await readHour(store, H10);
    const h11 = await readHour(store, H10 + 3_600_000, ["offset", "bytes", "timestamp"]);
    assert.equal(h10.rows, 60);
    assert.equal(h11.rows, 60);
    assert.deepEqual(Object.keys(h11.columns).sort(), ["bytes", "offset", "timestamp"]);
    assert.deepEqual([...h10.columns.offset!], evs.slice(0, 60).map((e) => e.offset));
    assert.deepEqual([...h10.columns.timestamp!], evs.slice(0, 60).map((e) => e.timestamp * 1000));
    assert.deepEqual([...h10.columns.id!], evs.slice(0, 60).map((e) => e.id));
    assert.deepEqual([...h10.columns.partition!], evs.slice(0, 60).map(() => 2));
    assert.deepEqual([...h11.columns.bytes!], evs.slice(60).map((e) => e.bytes));
  });
}

Deno.test("LakeWriter rolls by rows, and durableOffset() covers whole segments only", async () => {
  await using tmp = await tempStore();
  const w = writer(tmp.store, { ...BIG, maxRows: 100 });
  await w.recover(0, 0);
  w.append(events(0, 0, 250));
  await w.drain();
  assert.equal(w.durableOffset(0), 200);
  assert.equal(w.pendingRows(0), 50);
  assert.deepEqual(await lakeFiles(tmp.store), [
    hourPath(H10) + name(0, 0, 99),
    hourPath(H10) + name(0, 100, 199),
  ]);
  await w.flush(0);
  assert.equal(w.durableOffset(0), 250);
  assert.equal((await lakeFiles(tmp.store)).at(-1), hourPath(H10) + name(0, 200, 249));
});

Deno.test("LakeWriter rolls by estimated size", async () => {
  await using tmp = await tempStore();
  const w = writer(tmp.store, { ...BIG, maxBytes: 2000 });
  w.append(events(1, 0, 100));
  await w.flush();
  const files = (await lakeFiles(tmp.store)).map((k) => parseFileName(k)!);
  assert.ok(files.length >= 3, `expected several files, got ${files.length}`);
  assert.equal(files[0].firstOffset, 0);
  assert.equal(files.at(-1)!.lastOffset, 99);
  for (let i = 1; i < files.length; i++) {
    assert.equal(files[i].firstOffset, files[i - 1].lastOffset + 1);
  }
});

Deno.test("LakeWriter rolls by age when tick() sees the injected clock pass maxAgeMs", async () => {
  await using tmp = await tempStore();
  let now = 1_000_000;
  const w = writer(tmp.store, { ...BIG, maxAgeMs: 60_000 }, () => now);
  w.append(events(0, 0, 10));
  now += 59_999;
  w.tick();
  await w.drain();
  assert.deepEqual(await lakeFiles(tmp.store), []);
  w.append(events(0, 10, 5));
  now += 1;
  w.tick();
  await w.drain();
  assert.deepEqual(await lakeFiles(tmp.store), [hourPath(H10) + name(0, 0, 14)]);
  assert.equal(w.durableOffset(0), 15);
});

Deno.test("LakeWriter replay from the same offset rewrites identical files", async () => {
  await using tmp = await tempStore();
  const roll = { ...BIG, maxRows: 40 };
  const a = writer(tmp.store, roll);
  await a.recover(5, 0);
  a.append(events(5, 0, 130));
  await a.flush();
  const first = await tmp.store.list("year=");
  const bytes = await Promise.all(first.map((e) => tmp.store.get(e.key)));

  const b = writer(tmp.store, roll);
  await b.recover(5, 0);
  b.append(events(5, 0, 130));
  await b.flush();
  const second = await tmp.store.list("year=");
  assert.deepEqual(second, first);
  assert.deepEqual(await Promise.all(second.map((e) => tmp.store.get(e.key))), bytes);
  assert.equal((await readHour(tmp.store, H10)).rows, 130);
});

Deno.test("LakeWriter advance() moves durableOffset past dead-lettered messages", async () => {
  await using tmp = await tempStore();
  const w = writer(tmp.store, BIG);
  await w.recover(0, 0);
  w.append(events(0, 0, 10));
  w.advance(0, 13);
  await w.flush();
  assert.equal(w.durableOffset(0), 13);
  w.advance(0, 20);
  assert.equal(w.durableOffset(0), 20);
});

/** A store whose puts fail while `down` is true. */
class FlakyStore implements ObjectStore {
  down = false;
  puts = 0;
  constructor(readonly inner: ObjectStore, readonly failAfterPuts = Infinity) {}
  get uri() {
    return this.inner.uri;
  }
  put(key: string, bytes: Uint8Array, o?: { ifAbsent?: boolean }) {
    if (this.down || this.puts >= this.failAfterPuts) {
      return Promise.reject(new Error("store down"));
    }
    this.puts++;
    return this.inner.put(key, bytes, o);
  }
  get(key: string) {
    return this.inner.get(key);
  }
  read(key: string, s: number, e: number) {
    return this.inner.read(key, s, e);
  }
  size(key: string) {
    return this.inner.size(key);
  }
  list(p: string) {
    return this.inner.list(p);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
}

Deno.test("LakeWriter retries a failing store; durableOffset() waits for it", async () => {
  await using tmp = await tempStore();
  const flaky = new FlakyStore(tmp.store);
  const w = writer(flaky, { ...BIG, maxRows: 10 });
  await w.recover(0, 0);
  flaky.down = true;
  w.append(events(0, 0, 25));
  await delay(60);
  assert.equal(w.durableOffset(0), 0);
  assert.equal(w.pendingRows(), 25);
  flaky.down = false;
  await w.flush();
  assert.equal(w.durableOffset(0), 25);
  assert.equal((await readHour(tmp.store, H10)).rows, 25);
});

/** The uninterrupted run the crash tests compare against: 550 events, 100-row segments. */
async function uninterrupted(): Promise<string[]> {
  await using tmp = await tempStore();
  const w = writer(tmp.store, { ...BIG, maxRows: 100 });
  await w.recover(3, 0);
  w.append(events(3, 0, 550, H10 - 150_000)); // spans hours 09 and 10
  await w.flush();
  return await lakeFiles(tmp.store);
}

Deno.test("LakeWriter crash after an age roll past the commit: recover() + replay equals an uninterrupted run", async () => {
  const expected = await uninterrupted();
  await using tmp = await tempStore();
  let now = 0;
  const crashed = writer(tmp.store, { ...BIG, maxRows: 100, maxAgeMs: 1000 }, () => now);
  await crashed.recover(3, 0);
  const all = events(3, 0, 550, H10 - 150_000);
  crashed.append(all.slice(0, 250)); // [0-99] [100-199] by rows, 50 open
  now = 5000;
  crashed.tick(); // age roll: [200-249], a cut an uninterrupted run would not make
  crashed.append(all.slice(250, 330));
  await crashed.drain();
  assert.ok((await lakeFiles(tmp.store)).some((k) => k.endsWith(name(3, 200, 249))));
  crashed.abort(); // crash: Kafka holds commit 200, rows 250..329 were only in memory

  const restarted = writer(tmp.store, { ...BIG, maxRows: 100 });
  await restarted.recover(3, 200);
  restarted.append(all.slice(200));
  await restarted.flush();
  assert.deepEqual(await lakeFiles(tmp.store), expected);
  const rows = (await readHour(tmp.store, H10)).rows +
    (await readHour(tmp.store, H10 - 3_600_000)).rows;
  assert.equal(rows, 550);
});

Deno.test("LakeWriter crash with the commit inside a written segment: no row twice, none lost", async () => {
  await using tmp = await tempStore();
  let now = 0;
  const crashed = writer(tmp.store, { ...BIG, maxRows: 100, maxAgeMs: 1000 }, () => now);
  await crashed.recover(3, 0);
  const all = events(3, 0, 550, H10 - 150_000);
  crashed.append(all.slice(0, 250));
  now = 5000;
  crashed.tick(); // [200-249]
  await crashed.drain();
  crashed.abort(); // Kafka holds 220: another sink lagged behind the lake

  const restarted = writer(tmp.store, { ...BIG, maxRows: 100 });
  await restarted.recover(3, 220);
  assert.equal(restarted.durableOffset(3), 250);
  restarted.append(all.slice(220));
  await restarted.flush();
  const h9 = await readHour(tmp.store, H10 - 3_600_000, ["offset"]);
  const h10 = await readHour(tmp.store, H10, ["offset"]);
  const offsets = [...h9.columns.offset!, ...h10.columns.offset!].sort((a, b) => a - b);
  assert.deepEqual(offsets, all.map((e) => e.offset));
  assert.equal(h9.duplicates + h10.duplicates, 0);
});

Deno.test("LakeWriter crash in the middle of a segment's files: recover() removes the partial segment", async () => {
  const expected = await uninterrupted();
  await using tmp = await tempStore();
  // Puts: recover's intent; intent, 1 file ([0-99] lies in hour 09); intent,
  // 2 files ([100-199] crosses into hour 10): the store dies after the first.
  const flaky = new FlakyStore(tmp.store, 5);
  const crashed = writer(flaky, { ...BIG, maxRows: 100 });
  await crashed.recover(3, 0);
  const all = events(3, 0, 550, H10 - 150_000);
  crashed.append(all.slice(0, 200));
  await delay(50);
  assert.equal(crashed.durableOffset(3), 100);
  assert.equal((await lakeFiles(tmp.store)).filter((k) => k.endsWith(name(3, 100, 199))).length, 1);
  crashed.abort();
  await assert.rejects(crashed.drain());

  const restarted = writer(tmp.store, { ...BIG, maxRows: 100 });
  await restarted.recover(3, 100);
  restarted.append(all.slice(100));
  await restarted.flush();
  assert.deepEqual(await lakeFiles(tmp.store), expected);
});
