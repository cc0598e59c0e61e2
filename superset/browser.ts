/**
 * The browser prerequisite of the dashboard test: Debian's chromium at
 * /usr/bin/chromium (playwright cannot download its own builds here), installed
 * with apt-get when missing, and the launch flags that work as root in a
 * container.
 */
import { log } from "../src/log.ts";
import { UserError } from "../src/errors.ts";

export const CHROMIUM = "/usr/bin/chromium";

/** Flags for headless Chromium as root, without network side traffic. */
export const CHROMIUM_ARGS: readonly string[] = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];

async function present(): Promise<boolean> {
  try {
    return (await Deno.stat(CHROMIUM)).isFile;
  } catch {
    return false;
  }
}

async function apt(args: string[]): Promise<void> {
  const out = await new Deno.Command("apt-get", {
    args,
    env: { DEBIAN_FRONTEND: "noninteractive" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) {
    const tail = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-10).join("\n");
    throw new Error(`apt-get ${args.join(" ")} failed (${out.code}):\n${tail}`);
  }
}

/** Makes sure /usr/bin/chromium exists, installing Debian's package as root. */
export async function ensureChromium(): Promise<string> {
  if (await present()) return CHROMIUM;
  if (Deno.uid() !== 0) {
    throw new UserError(`${CHROMIUM} is missing: run \`sudo apt-get install -y chromium\``);
  }
  log.info("installing chromium with apt-get", { component: "superset" });
  await apt(["update"]);
  await apt(["install", "-y", "--no-install-recommends", "chromium", "fonts-liberation"]);
  if (!await present()) throw new Error(`apt-get installed chromium but ${CHROMIUM} is missing`);
  return CHROMIUM;
}
