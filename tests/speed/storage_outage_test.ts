/**
 * The lake's store going away under the speed layer: a GCS emulator killed
 * (SIGKILL) and restarted on its port and data folder, and a local lake folder
 * swapped for a dead end and back. The writer retries with backoff; when it
 * falls far behind, the layer pauses consumption and says so, and commits
 * nothing the lake does not hold; a brief outage is retried by the writer
 * alone, whose log says when the store is back. Either way the totals are
 * exact and every valid event is in the lake exactly once.
 *
 * The emulator is a private instance on a free port (the stack's, which other
 * tests use, stays up), with the filesystem backend so a restart keeps what was
 * written before the kill, as GCS would.
 */
import assert from "node:assert/strict";
import { migrate, openDb } from "../../src/db/mod.ts";
import { createKafkaSource } from "../../src/kafka/mod.ts";
import { openStore } from "../../src/lake/mod.ts";
import type { Logger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";
import { createGenerator } from "../../src/simulator/generator.ts";
import { type SpeedLayer, startSpeedLayer } from "../../src/speed/mod.ts";
import { FAKE_GCS_BINARY, gcsReady } from "../../src/stack/gcs.ts";
import { freshDatabase, freshTopic, uniqueName } from "../_support/services.ts";
import {
  produce,
  readBytes,
  readLake,
  referenceTotals,
  sorted,
  speedPlan,
  validEvents,
  waitCommitted,
  waitFor,
} from "../_support/speed_fixture.ts";
import { freePort } from "../_support/start_process.ts";

/** How the lake is reached, and how it is taken away and brought back. */
interface Outage {
  readonly lakeUri: string;
  readonly gcsEndpoint?: string;
  down(): Promise<void>;
  /** Brings the store back; a no-op when it is up. */
  up(): Promise<void>;
  close(): Promise<void>;
}

interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** A logger that keeps its lines (the layer and its lake writer share it). */
function capturing(lines: LogLine[], base: Record<string, unknown> = {}): Logger {
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    void lines.push({ level, msg, fields: { ...base, ...fields } });
  return {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: (f) => capturing(lines, { ...base, ...f }),
  };
}

/**
 * A fake-gcs-server of this test's own. Its arguments do not start with
 * `-scheme`, so the stack never takes it for the shared emulator.
 */
async function gcsOutage(): Promise<Outage> {
  const port = freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const root = await Deno.makeTempDir({ prefix: "speed_storage_gcs_" });
  let child: Deno.ChildProcess | undefined;
  const start = async () => {
    const c = new Deno.Command(FAKE_GCS_BINARY, {
      args: [
        "-backend",
        "filesystem",
        "-filesystem-root",
        root,
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        String(port),
        "-public-host",
        `127.0.0.1:${port}`,
        "-external-url",
        endpoint,
        "-log-level",
        "error",
      ],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child = c;
    let exit: Deno.CommandStatus | undefined;
    c.status.then((s) => exit = s);
    await waitFor("the private fake-gcs-server", async () => {
      if (exit) throw new Error(`fake-gcs-server exited with code ${exit.code}`);
      return await gcsReady(endpoint);
    }, 60_000);
  };
  const kill = async () => {
    if (!child) return;
    child.kill("SIGKILL");
    await child.status;
    child = undefined;
  };
  await start();
  return {
    // The GCS store creates the bucket on an emulator.
    lakeUri: `gs://${uniqueName("outage").replaceAll("_", "-")}/lake`,
    gcsEndpoint: endpoint,
    down: kill,
    up: async () => {
      if (!child) await start();
    },
    async close() {
      await kill();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/**
 * A local lake reached through a symbolic link, swapped atomically (rename over
 * it) to one that points at a plain file: every path under the lake then fails
 * with "not a directory", for root too, and no `mkdir -p` of the writer can
 * recreate it, as it could a folder renamed away. Swapped back, the same files
 * are there.
 */
async function localOutage(): Promise<Outage> {
  const dir = await Deno.makeTempDir({ prefix: "speed_storage_local_" });
  const lake = `${dir}/lake`;
  await Deno.mkdir(`${dir}/real`);
  await Deno.writeTextFile(`${dir}/dead-end`, "not a folder\n");
  const point = async (target: string) => {
    await Deno.symlink(target, `${lake}.next`);
    await Deno.rename(`${lake}.next`, lake);
  };
  await point(`${dir}/real`);
  let isDown = false;
  return {
    lakeUri: `file://${lake}`,
    async down() {
      await point(`${dir}/dead-end`);
      isDown = true;
    },
    async up() {
      if (!isDown) return;
      await point(`${dir}/real`);
      isDown = false;
    },
    close: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Rows the speed layer holds back per partition before it pauses: see layer.ts `#lakeBackpressure`. */
function pauseLimit(maxRows: number): number {
  return 2 * maxRows + 20_000;
}

const MAX_ROWS = 1_000;
/** Produced and committed before the outage. */
const FIRST = 3_000;

/** A layer running on a fresh topic, database and lake, with what it logged. */
interface Run {
  readonly layer: SpeedLayer;
  readonly outage: Outage;
  readonly lines: LogLine[];
  counter(name: string): number;
  /** Produces the generated items not produced yet (all but the FIRST). */
  produceRest(): Promise<void>;
}

/**
 * Starts a layer on a lake `open` gives, with FIRST of `total` generated items
 * produced and committed, runs `scenario`, then stops the layer and checks
 * the outcome: exact `bytes` totals, and every valid event in the lake once.
 */
async function withLayer(
  kind: string,
  open: () => Promise<Outage>,
  total: number,
  scenario: (run: Run) => Promise<void>,
): Promise<void> {
  const outage = await open();
  const topic = await freshTopic(`speed-store-${kind}`, 2);
  const fdb = await freshDatabase(`speed_store_${kind}`);
  const db = await openDb({ url: fdb.url, maxConnections: 4 });
  const plan = speedPlan({
    topic,
    group: `${topic}-g`,
    dbUrl: fdb.url,
    lakeUri: outage.lakeUri,
    gcsEndpoint: outage.gcsEndpoint,
    maxRows: MAX_ROWS,
  });
  const gen = createGenerator({
    seed: 31,
    devices: 100,
    startMs: Date.now() - 3 * 3_600_000,
    rate: 10,
    malformedShare: 0.01,
  });
  const items = Array.from({ length: total }, () => gen.next());
  const send = (from: number, to?: number) =>
    produce(topic, items.slice(from, to).map((i) => ({ key: i.key, value: i.value })));
  const lines: LogLine[] = [];
  const registry = new Registry();
  let layer: SpeedLayer | undefined;
  try {
    await migrate(db);
    await send(0, FIRST);
    const k = plan.source.kafka;
    layer = await startSpeedLayer({
      plan,
      db,
      store: openStore(plan.lake),
      source: createKafkaSource({
        brokers: k.brokers,
        clientId: k.clientId,
        topic: k.topic,
        group: k.group,
        fromBeginning: true,
      }),
      registry,
      log: capturing(lines),
    });
    const running = layer;
    await waitCommitted(running, topic);

    await scenario({
      layer: running,
      outage,
      lines,
      counter: (name) => registry.counter(name, "").get(),
      produceRest: () => send(FIRST),
    });

    await waitCommitted(running, topic, 180_000);
    await waitFor("no sink down", () => running.status().sinksDown.length === 0);
    const expected = referenceTotals(validEvents(items), 60_000);
    await waitFor("windows visible", async () => (await readBytes(db)).size >= expected.size);
    await running.stop();
    layer = undefined;
    assert.deepEqual(sorted(await readBytes(db)), sorted(expected));

    const rows = await readLake(openStore(plan.lake));
    const valid = validEvents(items);
    assert.equal(rows.length, valid.length, "one lake row per valid event");
    assert.equal(
      new Set(rows.map((r) => `${r.partition}|${r.offset}`)).size,
      rows.length,
      "no (partition, offset) twice",
    );
    const event = (id: string, bytes: number | bigint, seconds: number) =>
      `${id}|${bytes}|${seconds}`;
    assert.deepEqual(
      rows.map((r) => event(r.id, r.bytes, r.timestamp.getTime() / 1000)).sort(),
      valid.map((e) => event(e.id, e.bytes, e.timestamp)).sort(),
    );
  } finally {
    await outage.up().catch(() => {});
    await layer?.stop().catch(() => {});
    await db.close();
    await fdb.drop();
    await outage.close();
  }
}

/** Index of the first line with this message, -1 if none. */
function logged(lines: readonly LogLine[], msg: string): number {
  return lines.findIndex((l) => l.msg === msg);
}

async function failedLakeWrite(run: Run): Promise<void> {
  const n = run.counter("lake_write_retries_total");
  await waitFor("a failed lake write", () => run.counter("lake_write_retries_total") > n);
}

/**
 * Down mid-stream, long enough for the writer to fall past the pause limit:
 * the layer pauses the source and reports the lake down, PostgreSQL goes on
 * taking what was consumed, and no offset is committed until the store is back.
 */
async function longOutage(run: Run): Promise<void> {
  const { layer, outage, lines } = run;
  const status = () => layer.status().partitions;
  const filesBefore = run.counter("lake_files_written_total");
  const producing = run.produceRest();
  await waitFor("lake files of the second batch", () => {
    return run.counter("lake_files_written_total") > filesBefore;
  }, 120_000);
  await outage.down();
  await producing;
  await waitFor("the lake reported down", () => layer.status().sinksDown.includes("lake"), 180_000);
  await waitFor("PostgreSQL ahead of the commit", () => {
    return status().some((p) => p.storedOffset > p.committedOffset);
  });
  // Between two failed writes (the first lets a flush begun before the kill end).
  await failedLakeWrite(run);
  const stuck = status().map((p) => p.committedOffset);
  await failedLakeWrite(run);
  assert.deepEqual(status().map((p) => p.committedOffset), stuck, "no commit while down");
  assert.ok(layer.status().sinksDown.includes("lake"), "still paused");
  await outage.up();
  await waitFor("the lake reported back", () => layer.status().sinksDown.length === 0, 120_000);

  assert.ok(logged(lines, "lake write failed, retrying") >= 0, "the writer logged its failures");
  assert.ok(logged(lines, "lake unavailable, retrying") >= 0, "the layer logged the outage");
  assert.ok(
    logged(lines, "lake resumed") > logged(lines, "lake unavailable, retrying"),
    "the layer logged the resumption after the outage",
  );
}

/**
 * Down for a few failed writes, with far fewer rows than the pause limit: the
 * writer alone retries, and its log says when the store is back.
 */
async function briefOutage(run: Run): Promise<void> {
  const { outage, lines } = run;
  await outage.down();
  await run.produceRest();
  await failedLakeWrite(run);
  await failedLakeWrite(run);
  await outage.up();
  await waitFor("the writer's write after retries", () => {
    return logged(lines, "lake write succeeded after retries") >= 0;
  }, 60_000);
  assert.ok(
    logged(lines, "lake write succeeded after retries") >
      logged(lines, "lake write failed, retrying"),
  );
  assert.equal(logged(lines, "lake unavailable, retrying"), -1, "no pause for a few rows");
}

const STORES = [
  { kind: "gcs", what: "a killed GCS emulator", open: gcsOutage },
  { kind: "local", what: "a local lake folder gone", open: localOutage },
];

for (const { kind, what, open } of STORES) {
  Deno.test({
    name: `speed layer: ${what} mid-stream pauses consumption; nothing lost or doubled`,
    sanitizeOps: false,
    sanitizeResources: false,
    // Enough for a partition to pass the pause limit after the store goes down
    // (keys spread the events about evenly over the two partitions).
    fn: () => withLayer(kind, open, FIRST + 2 * pauseLimit(MAX_ROWS) + 16_000, longOutage),
  });

  Deno.test({
    name: `speed layer: ${what} briefly is retried by the writer alone; nothing lost or doubled`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => withLayer(kind, open, FIRST + 2_000, briefOutage),
  });
}
