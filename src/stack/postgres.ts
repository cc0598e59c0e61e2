/**
 * A PostgreSQL server for development and tests on 127.0.0.1:15432, from
 * Debian's packages (installed with apt-get when missing), with its own cluster
 * under `.state/postgres` (the system cluster is never touched). Trust auth on
 * loopback, superuser `postgres` without password. PostgreSQL refuses to run as
 * root, so as root the cluster belongs to and runs as the `postgres` user; if
 * that user cannot reach `.state/` (a checkout under a private home folder),
 * the cluster goes to `/var/tmp/antenna-lambda-<hash>/postgres` instead and the
 * log says so.
 */
import postgres from "postgres";
import { UserError } from "../errors.ts";
import { log } from "../log.ts";
import { REPO_ROOT, STATE_DIR } from "./_paths.ts";
import { exists, livePid, onPath, portOpen, run, runChecked, waitFor } from "./_process.ts";
import type { Service, ServiceStatus } from "./_service.ts";

export const PG_PORT = 15432;
export const PG_URL = `postgres://postgres@127.0.0.1:${PG_PORT}/postgres`;

const log_ = log.child({ component: "stack", service: "postgres" });
const asRoot = Deno.uid() === 0;

interface Layout {
  readonly root: string;
  readonly data: string;
  readonly logFile: string;
  readonly socketDir: string;
}

function layoutAt(root: string): Layout {
  return {
    root,
    data: `${root}/data`,
    logFile: `${root}/log/postgres.log`,
    socketDir: `${root}/run`,
  };
}

async function hash8(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].slice(0, 4).map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Runs a PostgreSQL binary as the user that owns the cluster. */
function asOwner(cmd: string, args: string[]) {
  return asRoot ? runChecked("runuser", ["-u", "postgres", "--", cmd, ...args]) : runChecked(
    cmd,
    args,
  );
}

let cachedLayout: Layout | undefined;

/** Where the cluster lives: `.state/postgres`, unless the postgres user cannot reach it. */
async function layout(): Promise<Layout> {
  if (cachedLayout) return cachedLayout;
  const preferred = layoutAt(`${STATE_DIR}/postgres`);
  const fallback = layoutAt(`/var/tmp/antenna-lambda-${await hash8(REPO_ROOT)}/postgres`);
  if (!asRoot || (await exists(preferred.data))) return (cachedLayout = preferred);
  if (await exists(fallback.data)) return (cachedLayout = fallback);
  await Deno.mkdir(STATE_DIR, { recursive: true });
  const reach = await run("runuser", ["-u", "postgres", "--", "test", "-x", STATE_DIR]);
  if (reach.code === 0) return (cachedLayout = preferred);
  log_.warn("the postgres user cannot reach .state/: the cluster goes under /var/tmp", {
    dir: fallback.root,
  });
  return (cachedLayout = fallback);
}

/** The bin folder of the newest PostgreSQL server installed, or undefined. */
async function findBinDir(): Promise<string | undefined> {
  const versions: number[] = [];
  try {
    for await (const e of Deno.readDir("/usr/lib/postgresql")) {
      if (/^\d+$/.test(e.name) && (await exists(`/usr/lib/postgresql/${e.name}/bin/initdb`))) {
        versions.push(Number(e.name));
      }
    }
  } catch {
    // not installed
  }
  if (versions.length === 0) return undefined;
  return `/usr/lib/postgresql/${Math.max(...versions)}/bin`;
}

async function installServer(): Promise<string> {
  const found = await findBinDir();
  if (found) return found;
  if (!asRoot || !(await onPath("apt-get"))) {
    throw new UserError(
      "PostgreSQL server not found: install it with `apt-get install postgresql`",
    );
  }
  log_.info("installing PostgreSQL from Debian packages (apt-get)");
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  await runChecked("apt-get", ["update", "-q"], { env });
  await runChecked("apt-get", ["install", "-y", "-q", "--no-install-recommends", "postgresql"], {
    env,
  });
  const bin = await findBinDir();
  if (!bin) throw new UserError("PostgreSQL server not found after apt-get install postgresql");
  return bin;
}

function stackConf(l: Layout): string {
  return [
    "# Written by src/stack/postgres.ts on every start: edit that file, not this one.",
    "listen_addresses = '127.0.0.1'",
    `port = ${PG_PORT}`,
    `unix_socket_directories = '${l.socketDir}'`,
    "max_connections = 200",
    // Sized for the speed layer's bulk upserts (BENCHMARKS.md): with the
    // defaults (128MB, max_wal_size 1GB) a catching-up layer forced a
    // checkpoint every few seconds, and each one made the next writes log
    // whole pages again. Ordinary settings for a write-heavy server.
    "shared_buffers = 1GB",
    "wal_buffers = 64MB",
    "max_wal_size = 8GB",
    "min_wal_size = 1GB",
    "checkpoint_timeout = 15min",
    "checkpoint_completion_target = 0.9",
    "wal_compression = lz4",
    "timezone = 'UTC'",
    "log_timezone = 'UTC'",
    "",
  ].join("\n");
}

async function initCluster(bin: string, l: Layout): Promise<void> {
  for (const d of [l.root, `${l.root}/log`, l.socketDir]) await Deno.mkdir(d, { recursive: true });
  if (asRoot) await runChecked("chown", ["-R", "postgres:postgres", l.root]);
  if (await exists(`${l.data}/PG_VERSION`)) return;
  log_.info("creating a PostgreSQL cluster", { dir: l.data });
  await asOwner(`${bin}/initdb`, [
    "-D",
    l.data,
    "-U",
    "postgres",
    "--auth=trust",
    "-E",
    "UTF8",
    "--no-locale",
  ]);
  // Our settings live in their own file so they can be rewritten on each start.
  await Deno.writeTextFile(`${l.data}/postgresql.conf`, "\ninclude 'stack.conf'\n", {
    append: true,
  });
}

/** True once the server answers a query. */
export async function pgReady(): Promise<boolean> {
  const sql = postgres(PG_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

export const postgresService: Service = {
  name: "postgres",
  address: PG_URL,

  async up() {
    const l = await layout();
    const pidFile = `${l.data}/postmaster.pid`;
    if (await livePid(pidFile, `-D ${l.data}`, { adopt: false })) {
      await waitFor("PostgreSQL", pgReady, { timeoutMs: 30_000, logFile: l.logFile });
      return;
    }
    if (await portOpen(PG_PORT)) {
      throw new UserError(
        `port ${PG_PORT} is already in use by another process: stop it (another checkout's stack?) before starting PostgreSQL`,
      );
    }
    const bin = await installServer();
    await initCluster(bin, l);
    await Deno.writeTextFile(`${l.data}/stack.conf`, stackConf(l));
    if (asRoot) await runChecked("chown", ["postgres:postgres", `${l.data}/stack.conf`]);
    log_.info("starting PostgreSQL", { address: PG_URL, log: l.logFile });
    // pg_ctl puts the server in its own session, so it outlives this process.
    await asOwner(`${bin}/pg_ctl`, ["-D", l.data, "-l", l.logFile, "-w", "-t", "60", "start"]);
    await waitFor("PostgreSQL", pgReady, { timeoutMs: 30_000, logFile: l.logFile });
  },

  async down() {
    const l = await layout();
    if (!(await livePid(`${l.data}/postmaster.pid`, `-D ${l.data}`, { adopt: false }))) return;
    const bin = await findBinDir();
    if (!bin) return;
    log_.info("stopping PostgreSQL");
    await asOwner(`${bin}/pg_ctl`, ["-D", l.data, "-m", "fast", "-w", "-t", "60", "stop"]);
  },

  async wipe() {
    const l = await layout();
    await Deno.remove(l.root, { recursive: true }).catch(() => {});
    cachedLayout = undefined;
  },

  async status(): Promise<ServiceStatus> {
    const l = await layout();
    const base = { name: "postgres" as const, address: PG_URL };
    const pid = await livePid(`${l.data}/postmaster.pid`, `-D ${l.data}`, { adopt: false });
    if (pid) {
      const ready = await pgReady();
      return { ...base, running: ready, pid, detail: ready ? undefined : "starting or unhealthy" };
    }
    if (await portOpen(PG_PORT)) {
      return { ...base, running: false, detail: "port taken by a process not of this stack" };
    }
    const installed = (await findBinDir()) !== undefined && (await exists(`${l.data}/PG_VERSION`));
    return { ...base, running: false, detail: installed ? "stopped" : "not installed" };
  },
};
