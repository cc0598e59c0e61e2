/**
 * The project's Superset, from PyPI into .state/superset (no Docker):
 *
 *   deno task superset install            venv + pinned packages + metadata DB + admin
 *   deno task superset start              install if needed, start on 127.0.0.1:18088
 *   deno task superset stop | status | url
 *   deno task superset import [--database-uri URI]   build + import the dashboard bundle
 *   deno task superset browser            make sure /usr/bin/chromium exists
 *
 * Every command is idempotent and fast when its work is done already.
 */
import { log } from "../src/log.ts";
import { UserError } from "../src/errors.ts";
import { baseUrl } from "./_paths.ts";
import { ensureChromium } from "./browser.ts";
import { importBundle } from "./import_bundle.ts";
import { install } from "./install.ts";
import { start, status, stop } from "./server.ts";
import { optionValue } from "./_run.ts";

const USAGE = `usage: deno task superset <command>
  install                      install Superset into .state/superset (idempotent)
  start                        install if needed and start the server, wait for /health
  stop                         stop the server started by \`start\`
  status                       print pid, URL and health as JSON
  import [--database-uri URI]  import the dashboard bundle (URI default: $SUPERSET_DATABASE_URI
                               or postgresql://postgres@127.0.0.1:15432/antenna)
  url                          print the dashboard URL
  browser                      install Debian's chromium if /usr/bin/chromium is missing`;

export async function main(args: string[]): Promise<void> {
  const [command, ...rest] = args;
  switch (command) {
    case "install":
      await install();
      return;
    case "start":
      await install();
      console.log(JSON.stringify(await start()));
      return;
    case "stop":
      await stop();
      return;
    case "status": {
      const s = await status();
      console.log(JSON.stringify(s));
      if (!s.healthy) Deno.exitCode = 1;
      return;
    }
    case "import": {
      const r = await importBundle({ databaseUri: optionValue(rest, "--database-uri") });
      console.log(r.url);
      return;
    }
    case "url":
      console.log(`${baseUrl()}/superset/dashboard/antenna-telemetry/`);
      return;
    case "browser":
      console.log(await ensureChromium());
      return;
    case undefined:
    case "-h":
    case "--help":
      console.log(USAGE);
      return;
    default:
      throw new UserError(`Unknown command "${command}"\n${USAGE}`);
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    if (e instanceof UserError) {
      log.error(e.message, { component: "superset" });
      Deno.exit(2);
    }
    throw e;
  }
}
