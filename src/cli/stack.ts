/**
 * `deno task stack up|down|status|reset [kafka|postgres|gcs ...]`: the command-line
 * face of `src/stack/mod.ts`. User mistakes and missing prerequisites print one line;
 * exit code 0 on success, 1 on failure (for `status`: 1 if any service is down).
 */
import { UserError } from "../errors.ts";
import { parseServices, stackDown, stackReset, stackStatus, stackUp } from "../stack/mod.ts";

const USAGE = "usage: deno task stack up|down|status|reset [kafka|postgres|gcs ...]";

function printStatus(rows: Awaited<ReturnType<typeof stackStatus>>): boolean {
  const width = Math.max(...rows.map((r) => r.address.length));
  for (const r of rows) {
    const state = r.running ? "up" : "down";
    const extra = [r.pid ? `pid ${r.pid}` : "", r.detail ?? ""].filter(Boolean).join(", ");
    console.log(
      `${r.name.padEnd(9)} ${r.address.padEnd(width)}  ${state.padEnd(4)}${
        extra ? `  (${extra})` : ""
      }`,
    );
  }
  return rows.every((r) => r.running);
}

export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "up": {
        const services = parseServices(rest);
        const started = Date.now();
        await stackUp(services);
        printStatus(await stackStatus(services));
        console.log(`stack up in ${((Date.now() - started) / 1000).toFixed(1)}s`);
        return 0;
      }
      case "down":
        await stackDown(parseServices(rest));
        printStatus(await stackStatus(parseServices(rest)));
        return 0;
      case "reset":
        // Destroys data others may rely on: refuse to do it by accident.
        if (!rest.includes("--yes")) {
          throw new UserError(
            "reset deletes the services' data: run `deno task stack reset --yes [services]`",
          );
        }
        await stackReset(parseServices(rest.filter((a) => a !== "--yes")));
        printStatus(await stackStatus(parseServices(rest.filter((a) => a !== "--yes"))));
        return 0;
      case "status":
        return printStatus(await stackStatus(parseServices(rest))) ? 0 : 1;
      case "-h":
      case "--help":
      case "help":
        console.log(USAGE);
        return 0;
      default:
        throw new UserError(command ? `unknown command "${command}"; ${USAGE}` : USAGE);
    }
  } catch (e) {
    // A service that fails to start is reported by message (with its log tail);
    // a stack trace would only hide that under lines of our own plumbing.
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    if (!(e instanceof UserError) && Deno.env.get("LOG_LEVEL") === "debug") console.error(e);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
