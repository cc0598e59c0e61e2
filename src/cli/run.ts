/**
 * The two ends every command's `main` shares: its arguments parsed with a
 * one-line error or the usage text, and its exit, where a user error is one
 * line on stderr instead of a stack trace.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UserError } from "../errors.ts";

/**
 * `parse(args)`, or the exit code when there is nothing to run: a UserError
 * is printed as `error: …` (2), "help" prints `usage` (0).
 *
 * @example
 * const parsed = parsedOrExit(parse, args, USAGE);
 * if (typeof parsed === "number") return parsed;
 */
export function parsedOrExit<T>(
  parse: (args: string[]) => T | "help",
  args: string[],
  usage: string,
): T | number {
  let parsed: T | "help";
  try {
    parsed = parse(args);
  } catch (err) {
    if (err instanceof UserError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    throw err;
  }
  if (parsed === "help") {
    console.log(usage);
    return 0;
  }
  return parsed;
}

/**
 * Runs `main` with the process's arguments and exits with its code; a
 * UserError thrown on the way is one line on stderr and exit code 1.
 *
 * @example
 * if (import.meta.main) await runMain(main);
 */
export async function runMain(main: (args: string[]) => Promise<number>): Promise<void> {
  try {
    Deno.exit(await main(Deno.args));
  } catch (err) {
    if (err instanceof UserError) {
      console.error(`error: ${err.message}`);
      Deno.exit(1);
    }
    throw err;
  }
}

/**
 * `parseArgs` in strict mode without positionals; an unknown or ill-typed
 * flag is a UserError with parseArgs' own message.
 */
export function strictArgs<const O extends NonNullable<ParseArgsConfig["options"]>>(
  args: string[],
  options: O,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new UserError((err as Error).message);
  }
}
