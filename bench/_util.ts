/**
 * Small helpers shared by the benchmarks: a peak-RSS sampler (Deno's own
 * resident set, polled, since the OS high-water mark would include earlier
 * phases of the same process), percentiles, Markdown tables, and a producer
 * of the simulator's events in partition order.
 */
import { Partitioners } from "kafkajs";
import { Serial } from "../src/async/serial.ts";
import { createProducer } from "../src/kafka/mod.ts";
import type { Generator } from "../src/simulator/mod.ts";

/** Samples this process's RSS every `everyMs` until `stop()`; returns the peak in bytes. */
export function sampleRss(everyMs = 100): { stop(): number; peak(): number } {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => {
    const rss = Deno.memoryUsage().rss;
    if (rss > peak) peak = rss;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
    peak: () => peak,
  };
}

/** The `p`-th percentile (0..100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank];
}

/** A Markdown table. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]) {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/**
 * Replaces (or appends) the `## <heading>` section of a Markdown file, leaving
 * other sections alone.
 */
export async function writeSection(path: string, heading: string, body: string): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    text = "# Benchmarks\n";
  }
  const start = text.indexOf(`## ${heading}\n`);
  const section = `## ${heading}\n\n${body.trim()}\n`;
  if (start < 0) {
    text = text.trimEnd() + "\n\n" + section;
  } else {
    const next = text.indexOf("\n## ", start + 3);
    text = text.slice(0, start) + section + (next < 0 ? "" : text.slice(next));
  }
  await Deno.writeTextFile(path, text);
}

export const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);

/**
 * The V8 flags of the `start` task (deno.json): the speed and batch layers run
 * inside `start`, so their benchmarks run their code with the same flags.
 */
export function startV8Flags(): string[] {
  const deno = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  return String(deno.tasks.start).match(/--v8-flags=\S+/g) ?? [];
}

/**
 * Runs this script again in a child process with the `start` task's V8 flags
 * (once: the child sees BENCH_START_FLAGS) and exits with its code; returns in
 * the child.
 */
export async function reexecWithStartFlags(script: URL): Promise<void> {
  if (Deno.env.get("BENCH_START_FLAGS")) return;
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...startV8Flags(), script.pathname, ...Deno.args],
    env: { BENCH_START_FLAGS: "1" },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}

/**
 * Sends `count` items of `gen` to `topic`, keyed as the simulator keys them,
 * with one producer per partition, each sending its chunks in order: so
 * every partition holds its events in generated order (the generator's own
 * late share is the only disorder; parallel producers of whole chunks would
 * make about a quarter of the events later than the allowed lateness).
 */
export async function produceInOrder(opts: {
  readonly brokers: string[];
  readonly topic: string;
  readonly partitions: number;
  readonly count: number;
  readonly gen: Generator;
  readonly clientId: string;
}): Promise<void> {
  const { topic, gen } = opts;
  const producers = await Promise.all(
    [...Array(opts.partitions).keys()].map((i) =>
      createProducer({ brokers: opts.brokers, clientId: `${opts.clientId}-${i}` })
    ),
  );
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = [...Array(opts.partitions).keys()].map((i) => ({
    partitionId: i,
    leader: 0,
    replicas: [0],
    isr: [0],
    partitionErrorCode: 0,
  }));
  const partitionOf = (key: string) =>
    partitioner({ topic, partitionMetadata, message: { key, value: null } });
  const CHUNK = 20_000;
  const queues = producers.map(() => new Serial());
  const sending: Promise<void>[][] = producers.map(() => []);
  for (let next = 0; next < opts.count; next += CHUNK) {
    const n = Math.min(CHUNK, opts.count - next);
    const msgs: { key: string; value: string | Uint8Array; partition: number }[][] = producers
      .map(() => []);
    for (let i = 0; i < n; i++) {
      const it = gen.next();
      const partition = partitionOf(it.key);
      msgs[partition].push({ key: it.key, value: it.value, partition });
    }
    for (let p = 0; p < producers.length; p++) {
      const queue = sending[p];
      const chunk = msgs[p];
      queue.push(queues[p].run(() => producers[p].send(topic, chunk)));
      if (queue.length > 2) await queue.shift();
    }
  }
  await Promise.all(sending.flat());
  await Promise.all(producers.map((p) => p.close()));
}
