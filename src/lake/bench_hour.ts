/**
 * Measures the lake on a batch-sized hour: writes 3.6 M events (1,000/s for an
 * hour, 100,000 devices, 3 Kafka partitions) with `LakeWriter` into a temp
 * folder, reads the hour back with `readHour` and aggregates bytes per
 * antenna, device and app, then compacts and reads again. Prints times and RSS.
 *
 *   ./deno run -A src/lake/bench_hour.ts [events=3600000] [maxRows=100000]
 *
 * With LAKE_BENCH_DIR set, the lake is kept there, uncompacted, for other
 * measurements; an existing one is only read.
 */
import type { SourcedEvent } from "../core/event.ts";
import { compactHour } from "./compact.ts";
import { LocalStore } from "./local_store.ts";
import { readHour } from "./reader.ts";
import { LakeWriter } from "./writer.ts";
import { Registry } from "../metrics.ts";

const N = Number(Deno.args[0] ?? 3_600_000);
const maxRows = Number(Deno.args[1] ?? 100_000);
const PARTITIONS = 3;
const H = Date.UTC(2026, 10, 28, 10);
const mb = () => Math.round(Deno.memoryUsage().rss / 1e6);
let peak = 0;
const sample = setInterval(() => (peak = Math.max(peak, mb())), 50);

const keep = Deno.env.get("LAKE_BENCH_DIR");
const dir = keep ?? await Deno.makeTempDir({ prefix: "lake_bench_" });
const store = new LocalStore(dir);
const reuse = keep !== undefined && (await store.list("")).length > 0;
const devices = Array.from({ length: 100_000 }, () => crypto.randomUUID());
const antennas = Array.from({ length: 2_000 }, () => crypto.randomUUID());
const apps = ["video", "music", "social", "maps", "mail", "web", "games", "news"];
let seed = 42;
const rnd = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 4294967296;
};

const w = new LakeWriter({
  store,
  roll: { maxRows, maxBytes: 1e12, maxAgeMs: 1e12 },
  registry: new Registry(),
});
let t = performance.now();
if (!reuse) await write();
async function write() {
  const next = new Array(PARTITIONS).fill(0);
  for (let i = 0; i < N; i += 10_000) {
    const byPart: SourcedEvent[][] = Array.from({ length: PARTITIONS }, () => []);
    for (let j = i; j < Math.min(N, i + 10_000); j++) {
      const p = j % PARTITIONS;
      byPart[p].push({
        partition: p,
        offset: next[p]++,
        timestamp: Math.floor((H + (j * 3_600_000) / N) / 1000),
        id: devices[Math.floor(rnd() * devices.length)],
        antenna_id: antennas[Math.floor(rnd() * antennas.length)],
        app: apps[Math.floor(rnd() * apps.length)],
        bytes: Math.floor(Math.exp(rnd() * 16)),
      });
    }
    for (const evs of byPart) w.append(evs);
    if (w.pendingRows() > 4 * maxRows) await w.drain();
  }
  await w.flush();
  const writeMs = performance.now() - t;
  const files = await store.list("");
  const size = files.reduce((n, f) => n + f.size, 0);
  console.log(
    `write: ${N} events, ${files.length} files, ${(size / 1e6).toFixed(1)} MB in ${
      (writeMs / 1000).toFixed(2)
    } s (${Math.round(N / (writeMs / 1000))} events/s), peak RSS ${Math.max(peak, mb())} MB`,
  );
}

async function readAndAggregate(label: string) {
  peak = mb();
  const t0 = performance.now();
  const h = await readHour(store, H, ["id", "antenna_id", "app", "bytes"]);
  const t1 = performance.now();
  const byAntenna = new Map<string, number>();
  const byDevice = new Map<string, number>();
  const byApp = new Map<string, number>();
  const { id, antenna_id, app, bytes } = h.columns;
  for (let i = 0; i < h.rows; i++) {
    const b = bytes![i];
    byAntenna.set(antenna_id![i], (byAntenna.get(antenna_id![i]) ?? 0) + b);
    byDevice.set(id![i], (byDevice.get(id![i]) ?? 0) + b);
    byApp.set(app![i], (byApp.get(app![i]) ?? 0) + b);
  }
  const t2 = performance.now();
  console.log(
    `${label}: ${h.rows} rows from ${h.files.length} files: read ${
      ((t1 - t0) / 1000).toFixed(2)
    } s (${Math.round(h.rows / ((t1 - t0) / 1000))} rows/s), aggregate ${
      ((t2 - t1) / 1000).toFixed(2)
    } s, total ${
      ((t2 - t0) / 1000).toFixed(2)
    } s; ${byDevice.size} devices, ${byAntenna.size} antennas; peak RSS ${Math.max(peak, mb())} MB`,
  );
}

await readAndAggregate("read rolled files");
if (keep) Deno.exit(0);
t = performance.now();
for (let p = 0; p < PARTITIONS; p++) await compactHour(store, H, p);
console.log(
  `compact: ${((performance.now() - t) / 1000).toFixed(2)} s, peak RSS ${Math.max(peak, mb())} MB`,
);
await readAndAggregate("read compacted files");
clearInterval(sample);
if (!keep) await Deno.remove(dir, { recursive: true });
