/**
 * A Google Cloud Storage emulator on http://127.0.0.1:14443: fsouza's
 * fake-gcs-server, built once from the Go module proxy into `.state/bin` with
 * the machine's Go, run detached with the in-memory backend (a restart empties
 * it, which is what tests want). Clients reach it with
 * `new Storage({ apiEndpoint: GCS_ENDPOINT, projectId: "test" })`.
 */
import { UserError } from "../errors.ts";
import { log } from "../log.ts";
import { BIN_DIR, STATE_DIR } from "./_paths.ts";
import {
  exists,
  livePid,
  onPath,
  pidRunning,
  portOpen,
  runChecked,
  spawnDetached,
  stopPid,
  waitFor,
} from "./_process.ts";
import type { Service, ServiceStatus } from "./_service.ts";

export const GCS_PORT = 14443;
export const GCS_ENDPOINT = `http://127.0.0.1:${GCS_PORT}`;
/** Pinned module version; changing it rebuilds the binary on the next `up`. */
export const FAKE_GCS_VERSION = "v1.56.1";

/** The emulator binary `up` builds (tests also start private instances of it). */
export const FAKE_GCS_BINARY = `${BIN_DIR}/fake-gcs-server`;
const VERSION_FILE = `${BIN_DIR}/fake-gcs-server.version`;
const DIR = `${STATE_DIR}/gcs`;
const PID_FILE = `${DIR}/gcs.pid`;
const LOG_FILE = `${DIR}/gcs.log`;
/**
 * Identifies our emulator's process (not, say, an editor holding the binary's
 * path, nor a test's private instance, whose arguments start otherwise).
 */
const MARKER = `${FAKE_GCS_BINARY} -scheme`;

const log_ = log.child({ component: "stack", service: "gcs" });

async function install(): Promise<void> {
  if (
    (await exists(FAKE_GCS_BINARY)) && (await exists(VERSION_FILE)) &&
    (await Deno.readTextFile(VERSION_FILE)).trim() === FAKE_GCS_VERSION
  ) return;
  if (!(await onPath("go"))) throw new UserError("go not found: install Go 1.22 or newer");
  log_.info("building fake-gcs-server from the Go module proxy (a few minutes)", {
    version: FAKE_GCS_VERSION,
    into: BIN_DIR,
  });
  await Deno.mkdir(BIN_DIR, { recursive: true });
  await runChecked("go", ["install", `github.com/fsouza/fake-gcs-server@${FAKE_GCS_VERSION}`], {
    // Outside any module, so a go.mod of the caller's folder does not interfere.
    cwd: BIN_DIR,
    env: { GOBIN: BIN_DIR, GOFLAGS: "-buildvcs=false", GO111MODULE: "on" },
  });
  await Deno.writeTextFile(VERSION_FILE, FAKE_GCS_VERSION + "\n");
}

/** True once the emulator at `endpoint` answers the JSON API's bucket listing. */
export async function gcsReady(endpoint = GCS_ENDPOINT): Promise<boolean> {
  try {
    const res = await fetch(`${endpoint}/storage/v1/b?project=test`, {
      signal: AbortSignal.timeout(3000),
    });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

export const gcsService: Service = {
  name: "gcs",
  address: GCS_ENDPOINT,

  async up() {
    const alive = async () => (await livePid(PID_FILE, MARKER)) !== undefined;
    if (!(await alive())) {
      if (await portOpen(GCS_PORT)) {
        throw new UserError(
          `port ${GCS_PORT} is already in use by another process: stop it (another checkout's stack?) before starting fake-gcs-server`,
        );
      }
      await install();
      await Deno.mkdir(DIR, { recursive: true });
      log_.info("starting fake-gcs-server", { address: GCS_ENDPOINT, log: LOG_FILE });
      const started = await spawnDetached(FAKE_GCS_BINARY, [
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        String(GCS_PORT),
        "-backend",
        "memory",
        "-public-host",
        `127.0.0.1:${GCS_PORT}`,
        "-external-url",
        GCS_ENDPOINT,
        "-log-level",
        "warn",
      ], { logFile: LOG_FILE, pidFile: PID_FILE });
      await waitFor("fake-gcs-server", gcsReady, {
        timeoutMs: 30_000,
        alive: () => pidRunning(started),
        logFile: LOG_FILE,
      });
      return;
    }
    await waitFor("fake-gcs-server", gcsReady, { timeoutMs: 30_000, alive, logFile: LOG_FILE });
  },

  async down() {
    const pid = await livePid(PID_FILE, MARKER);
    if (!pid) return;
    log_.info("stopping fake-gcs-server", { pid });
    await stopPid(pid, 10_000);
    await Deno.remove(PID_FILE).catch(() => {});
  },

  async wipe() {
    // The binary in .state/bin stays: rebuilding it takes minutes and holds no state.
    await Deno.remove(DIR, { recursive: true }).catch(() => {});
  },

  async status(): Promise<ServiceStatus> {
    const base = { name: "gcs" as const, address: GCS_ENDPOINT };
    const pid = await livePid(PID_FILE, MARKER);
    if (pid) {
      const ready = await gcsReady();
      return { ...base, running: ready, pid, detail: ready ? undefined : "starting or unhealthy" };
    }
    if (await portOpen(GCS_PORT)) {
      return { ...base, running: false, detail: "port taken by a process not of this stack" };
    }
    return {
      ...base,
      running: false,
      detail: (await exists(FAKE_GCS_BINARY)) ? "stopped" : "not installed",
    };
  },
};
