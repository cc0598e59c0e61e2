/**
 * The text of `help`: every task of deno.json, in deno.json's order, with
 * one line on what it does. The list comes from deno.json itself so a task
 * added there shows up here; a task without a description below is listed
 * with its command line, and a test fails until it gets one.
 */
import denoJson from "../../deno.json" with { type: "json" };

/** What each task does, keyed by its name in deno.json. */
export const TASK_DESCRIPTIONS: Readonly<Record<string, string>> = {
  start: "Run the pipeline: source -> speed layer -> PostgreSQL + lake,\n" +
    "hourly batch layer, HTTP API. Embedded defaults need no service.",
  check: "Validate pipeline.yaml (or the given file) and list every problem.",
  provision: "Apply the SQL migrations, seed simulator users, load a users CSV.",
  simulate: "Produce simulated antenna events to Kafka (retries while it is down).",
  batch: "Run the batch layer for an hour (--hour) or a range (--from/--to).",
  backfill: "Recompute a metric's history (--metric NAME) or drop a removed\n" +
    "metric's rows (--drop NAME).",
  stack: "Start, stop or show the local Kafka, PostgreSQL and GCS emulator.",
  test: "Start the local stack and run the tests (default tests/, or the given files).",
  ok: "fmt --check, lint, type check and the whole test suite.",
  gen: "Regenerate docs/config-reference.md, docs/pipeline.schema.json and the config types.",
  superset: "Install, start, stop or show the Superset dashboard (install | start | stop |\n" +
    "status | url | browser).",
  "bench:speed": "Benchmark the speed layer's throughput (needs the local stack).",
  "bench:batch": "Benchmark the batch layer on one hour of 3.6 M events in a local lake.",
  "bench:api": "Benchmark the serving API under load on loopback.",
  "bench:validate": "Benchmark decoding and validating one message, no I/O.",
  "bench:compact": "Benchmark lake compaction of one full partition-hour.",
  "bench:alerts": "Benchmark what quota alerts cost the speed layer and how fast they are.",
};

/** The tasks of deno.json, in its order. */
export function taskNames(): string[] {
  return Object.keys(denoJson.tasks);
}

/** The `help` text, one entry per task of deno.json. */
export function helpText(): string {
  const names = taskNames();
  const width = Math.max(...names.map((n) => n.length)) + 2;
  const entries = names.map((name) => {
    const text = TASK_DESCRIPTIONS[name] ??
      `runs: ${(denoJson.tasks as Record<string, string>)[name]}`;
    const [first, ...rest] = text.split("\n");
    const pad = " ".repeat(2 + width);
    return [`  ${name.padEnd(width)}${first}`, ...rest.map((l) => pad + l)].join("\n");
  });
  return `antenna-lambda: a lambda architecture for mobile-antenna telemetry

Usage: deno task <task> [options]      (or ./deno run -A main.ts <command>)

Tasks:
${entries.join("\n")}
  help${
    " ".repeat(width - 4)
  }Show this text (./deno run -A main.ts help). Every command takes --help.

Common option: --config <file>  (default ./pipeline.yaml)
Docs: README.md, docs/config-reference.md`;
}
