/**
 * Where the project's local Superset lives: one state folder under the repo
 * (`.state/superset`) with the virtualenv, the SQLite metadata database, the
 * secret key, marker files, the pid file and the log. Deleting the folder
 * starts over; nothing is written outside it.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (this file sits in <root>/superset/). */
export const REPO_ROOT: string = dirname(dirname(fileURLToPath(import.meta.url)));

/** Loopback only: this Superset is for the developer and the tests. */
export const HOST = "127.0.0.1";
/** Overridable with SUPERSET_PORT, e.g. when 18088 is taken. */
export const PORT: number = Number(Deno.env.get("SUPERSET_PORT") ?? "18088");

export interface SupersetPaths {
  readonly state: string;
  readonly venv: string;
  readonly python: string;
  readonly bin: (name: string) => string;
  readonly config: string;
  readonly requirements: string;
  readonly secretKey: string;
  readonly pidFile: string;
  readonly logFile: string;
  /** Holds the hash of requirements.txt that was installed last. */
  readonly pipMarker: string;
  /** Holds the hash of the bootstrap inputs (config, admin) done last. */
  readonly initMarker: string;
  readonly bundleDir: string;
}

export function supersetPaths(root: string = REPO_ROOT): SupersetPaths {
  const state = join(root, ".state", "superset");
  const venv = join(state, "venv");
  return {
    state,
    venv,
    python: join(venv, "bin", "python"),
    bin: (name) => join(venv, "bin", name),
    config: join(root, "superset", "superset_config.py"),
    requirements: join(root, "superset", "requirements.txt"),
    secretKey: join(state, "secret_key"),
    pidFile: join(state, "superset.pid"),
    logFile: join(state, "superset.log"),
    pipMarker: join(state, "pip.sha256"),
    initMarker: join(state, "init.sha256"),
    bundleDir: join(root, "superset", "bundle"),
  };
}

/** The base URL of the local Superset. */
export function baseUrl(): string {
  return `http://${HOST}:${PORT}`;
}
