/**
 * Where the local stack lives: everything under `<repo>/.state/` (gitignored),
 * one folder per service, so `rm -rf .state/<service>` resets just that one.
 */

/** The repository root (this file is `<repo>/src/stack/_paths.ts`). */
export const REPO_ROOT: string = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/**
 * `<repo>/.state`, with a symlink resolved: worktrees may share one stack
 * through a `.state` link, and the daemons' command lines (which identify
 * them) name the real folder.
 */
export const STATE_DIR: string = realPath(`${REPO_ROOT}/.state`);

function realPath(path: string): string {
  try {
    return Deno.realPathSync(path);
  } catch {
    return path; // not created yet
  }
}

/** Binaries the stack builds itself (fake-gcs-server). */
export const BIN_DIR = `${STATE_DIR}/bin`;

/** Serialises `up`/`down` across processes: several engineers and test runs share one stack. */
export const LOCK_FILE = `${STATE_DIR}/stack.lock`;
