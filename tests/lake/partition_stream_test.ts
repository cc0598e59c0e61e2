/**
 * streamPartition(): one partition's lake events in offset order, each once,
 * across hour folders (late events sit in earlier hours' files), compacted
 * hours, and files that overlap (a replay orphan); within offset and hour
 * bounds; a slice at a time. On a local folder and on the GCS emulator, with
 * files written by the speed layer's own LakeWriter.
 */
import assert from "node:assert/strict";
import {
  compactHour,
  GcsStore,
  LakeWriter,
  listPartitionFiles,
  LocalStore,
  type ObjectStore,
  streamPartition,
} from "../../src/lake/mod.ts";
import type { SourcedEvent } from "../../src/core/event.ts";
import { HOUR_MS, hourStart } from "../../src/core/window.ts";
import { createRandom } from "../../src/simulator/mod.ts";
import { createLogger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";
import { gcsEndpoint, uniqueName } from "../_support/services.ts";

const H0 = Date.UTC(2026, 10, 28, 8);
const quiet = createLogger({ test: "stream" });

/** Two partitions over three hours, 10% of events up to 90 s late (so in the previous hour's folder near a boundary). */
function events(): SourcedEvent[] {
  const r = createRandom(11);
  const out: SourcedEvent[] = [];
  const next = [0, 0];
  const n = 6_000;
  for (let i = 0; i < n; i++) {
    let t = H0 + Math.floor((i * 3 * HOUR_MS) / n);
    if (r.int(10) === 0) t -= r.int(90_000);
    const partition = i % 2;
    out.push({
      bytes: r.int(1_000),
      timestamp: Math.floor(t / 1000),
      app: ["A", "B", "C"][r.int(3)],
      id: `d${r.int(40)}`,
      antenna_id: `a${r.int(3)}`,
      partition,
      offset: next[partition]++,
    });
  }
  return out;
}

async function writeLake(store: ObjectStore, evs: SourcedEvent[]): Promise<void> {
  const w = new LakeWriter({
    store,
    roll: { maxRows: 700, maxBytes: 64 * 1024 * 1024, maxAgeMs: 3_600_000 },
    log: quiet,
    registry: new Registry(),
  });
  for (const p of [0, 1]) await w.recover(p, 0);
  for (let i = 0; i < evs.length; i += 500) {
    const batch = evs.slice(i, i + 500);
    w.append(batch);
    for (const p of [0, 1]) {
      const last = batch.filter((e) => e.partition === p).at(-1);
      if (last) w.advance(p, last.offset + 1);
    }
  }
  await w.flush();
}

async function collect(store: ObjectStore, o: Parameters<typeof streamPartition>[1]) {
  const rows: { offset: number; timestamp: number; id: string; bytes: number }[] = [];
  let chunks = 0;
  for await (const c of streamPartition(store, o)) {
    chunks++;
    assert.ok(c.rows <= (o.sliceRows ?? 65_536));
    for (let i = 0; i < c.rows; i++) {
      rows.push({ offset: c.offset[i], timestamp: c.timestamp[i], id: c.id[i], bytes: c.bytes[i] });
    }
  }
  return { rows, chunks };
}

const expected = (evs: SourcedEvent[], p: number, f: (e: SourcedEvent) => boolean = () => true) =>
  evs.filter((e) => e.partition === p && f(e)).map((e) => ({
    offset: e.offset,
    timestamp: e.timestamp * 1000,
    id: e.id,
    bytes: e.bytes,
  }));

const subjects: { name: string; make(): Promise<{ store: ObjectStore; done(): Promise<void> }> }[] =
  [
    {
      name: "local folder",
      async make() {
        const dir = await Deno.makeTempDir({ prefix: "stream_" });
        return { store: new LocalStore(dir), done: () => Deno.remove(dir, { recursive: true }) };
      },
    },
    {
      name: "GCS emulator",
      make() {
        const bucket = uniqueName("stream").replaceAll("_", "-");
        const store = new GcsStore({ bucket, prefix: "raw", apiEndpoint: gcsEndpoint() });
        return Promise.resolve({ store, done: () => Promise.resolve() });
      },
    },
  ];

for (const s of subjects) {
  Deno.test(`streamPartition() merges hour folders by offset, each event once (${s.name})`, async () => {
    const { store, done } = await s.make();
    try {
      const evs = events();
      await writeLake(store, evs);
      const files = await listPartitionFiles(store, 0);
      assert.ok(new Set(files.map((f) => f.hourMs)).size >= 3, "files in several hour folders");

      const all = await collect(store, { partition: 0, sliceRows: 256 });
      assert.deepEqual(all.rows, expected(evs, 0));
      assert.ok(all.chunks > 5, "read a slice at a time");

      // A compacted hour beside a replay orphan (an overlapping copy of a file).
      await compactHour(store, H0 + HOUR_MS, 0);
      const orphan = (await listPartitionFiles(store, 0)).find((f) =>
        f.hourMs === H0 + 2 * HOUR_MS
      )!;
      const bytes = await store.get(orphan.key);
      const copy = orphan.key.replace(
        /-o(\d{20})\.parquet$/,
        (_m, last: string) => `-o${String(Number(last) + 1).padStart(20, "0")}.parquet`,
      );
      await store.put(copy, bytes);
      const again = await collect(store, { partition: 0, sliceRows: 300 });
      assert.deepEqual(again.rows, expected(evs, 0));

      // Offset bounds, and only the hour folders from one on.
      const bounded = await collect(store, {
        partition: 0,
        startOffset: 500,
        stopOffset: 2_100,
        fromHourMs: H0 + HOUR_MS,
        sliceRows: 128,
      });
      assert.deepEqual(
        bounded.rows,
        expected(
          evs,
          0,
          (e) =>
            e.offset >= 500 && e.offset < 2_100 && hourStart(e.timestamp * 1000) >= H0 + HOUR_MS,
        ),
      );
      assert.deepEqual((await collect(store, { partition: 1 })).rows, expected(evs, 1));
    } finally {
      await done();
    }
  });
}
