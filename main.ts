/**
 * antenna-lambda: one process that runs the lambda architecture declared in
 * pipeline.yaml. This file only routes a command to its module; each module is
 * loaded on demand so `check` does not pay for Kafka or PostgreSQL clients.
 */
import process from "node:process";
import { UserError } from "./src/errors.ts";
import { runMain } from "./src/cli/run.ts";
import { helpText } from "./src/cli/help.ts";

// Dependencies (the GCS client's URL stack) load Node's deprecated `punycode`;
// the warning is about their internals, nothing an operator can act on.
process.noDeprecation = true;

type CommandMain = (args: string[]) => Promise<number>;

const COMMANDS: Record<string, () => Promise<CommandMain>> = {
  start: async () => (await import("./src/cli/start.ts")).main,
  check: async () => (await import("./src/cli/check.ts")).main,
  provision: async () => (await import("./src/cli/provision.ts")).main,
  simulate: async () => (await import("./src/cli/simulate.ts")).main,
  batch: async () => (await import("./src/cli/batch.ts")).main,
  backfill: async () => (await import("./src/cli/backfill.ts")).main,
  stack: async () => (await import("./src/cli/stack.ts")).main,
};

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "help" || command === "--help" || command === "-h") {
    console.log(helpText());
    return command ? 0 : 2;
  }
  const load = COMMANDS[command];
  if (!load) throw new UserError(`unknown command "${command}" (run with --help to list commands)`);
  return await (await load())(rest);
}

if (import.meta.main) await runMain(run);
