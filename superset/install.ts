/**
 * Installs Apache Superset from PyPI into the state folder's virtualenv and
 * bootstraps its metadata database (migrations, admin user, roles). Each step
 * is skipped when a marker file says it was done with the same inputs, so a
 * second `install` takes well under a second.
 */
import { log } from "../src/log.ts";
import { UserError } from "../src/errors.ts";
import { supersetPaths } from "./_paths.ts";
import { readText, run, runOk, sha256 } from "./_run.ts";

const logger = log.child({ component: "superset" });

/** The admin account the setup creates and the tests log in with. */
export function adminCredentials(): { username: string; password: string } {
  return {
    username: Deno.env.get("SUPERSET_ADMIN_USER") ?? "admin",
    password: Deno.env.get("SUPERSET_ADMIN_PASSWORD") ?? "admin",
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Superset 6 supports Python 3.10 to 3.12; fail early with one clear line otherwise. */
async function checkPython(python: string): Promise<void> {
  const r = await run(python, ["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    .catch(() => undefined);
  if (!r || r.code !== 0) {
    throw new UserError(`"${python}" is not runnable: install Python 3.10-3.12 (python3, venv)`);
  }
  const [major, minor] = r.output.trim().split(".").map(Number);
  if (major !== 3 || minor < 10 || minor > 12) {
    throw new UserError(`Superset needs Python 3.10-3.12, "${python}" is ${r.output.trim()}`);
  }
}

async function ensureVenv(): Promise<void> {
  const p = supersetPaths();
  if (await exists(p.python)) return;
  const python = Deno.env.get("SUPERSET_PYTHON") ?? "python3";
  await checkPython(python);
  logger.info("creating virtualenv", { path: p.venv });
  await Deno.mkdir(p.state, { recursive: true });
  await runOk(python, ["-m", "venv", p.venv]);
}

async function ensurePackages(): Promise<void> {
  const p = supersetPaths();
  const hash = await sha256(await Deno.readTextFile(p.requirements));
  if ((await readText(p.pipMarker))?.trim() === hash) return;
  logger.info("pip install (a few minutes the first time)", { requirements: p.requirements });
  const t0 = performance.now();
  await runOk(p.bin("pip"), ["install", "--disable-pip-version-check", "-r", p.requirements]);
  await Deno.writeTextFile(p.pipMarker, hash + "\n");
  logger.info("pip install done", { seconds: Math.round((performance.now() - t0) / 1000) });
}

async function ensureSecretKey(): Promise<void> {
  const p = supersetPaths();
  if (Deno.env.get("SUPERSET_SECRET_KEY") || await exists(p.secretKey)) return;
  const bytes = crypto.getRandomValues(new Uint8Array(42));
  const key = btoa(String.fromCharCode(...bytes));
  await Deno.writeTextFile(p.secretKey, key + "\n", { mode: 0o600 });
}

async function ensureBootstrapped(): Promise<void> {
  const p = supersetPaths();
  const admin = adminCredentials();
  // Re-run when Superset, our config or the admin account changed.
  const hash = await sha256(
    [
      await Deno.readTextFile(p.requirements),
      await Deno.readTextFile(p.config),
      admin.username,
      admin.password,
    ].join("\0"),
  );
  if ((await readText(p.initMarker))?.trim() === hash) return;
  const superset = p.bin("superset");
  logger.info("superset db upgrade");
  await runOk(superset, ["db", "upgrade"], { cwd: p.state });
  logger.info("superset fab create-admin", { username: admin.username });
  const created = await runOk(superset, [
    "fab",
    "create-admin",
    "--username",
    admin.username,
    "--firstname",
    "Admin",
    "--lastname",
    "User",
    "--email",
    `${admin.username}@localhost`,
    "--password",
    admin.password,
  ], { cwd: p.state });
  if (/already exists/i.test(created)) {
    // create-admin never changes an existing user's password: reset it so the
    // configured password is the one that works.
    await runOk(superset, [
      "fab",
      "reset-password",
      "--username",
      admin.username,
      "--password",
      admin.password,
    ], { cwd: p.state });
  }
  logger.info("superset init");
  await runOk(superset, ["init"], { cwd: p.state });
  await Deno.writeTextFile(p.initMarker, hash + "\n");
}

/** Installs (or updates) Superset and its metadata; fast when nothing changed. */
export async function install(): Promise<void> {
  const t0 = performance.now();
  await ensureVenv();
  await ensurePackages();
  await ensureSecretKey();
  await ensureBootstrapped();
  logger.info("superset installed", { ms: Math.round(performance.now() - t0) });
}
