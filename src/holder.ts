/**
 * The identity of this process for leases: who holds a batch run, a
 * backfill row or a quota alert delivery (`host:pid`), and whether the
 * process behind another holder is known to be gone, so its claims are taken
 * over at once instead of after their lease. Shared by the batch layer, the
 * backfill and the alerts, so it sits below all of them.
 */

/** Who holds a claim, and whether the process behind another claim's holder is gone. */
export interface RunHolder {
  /** host:pid of this process. */
  readonly id: string;
  /** True only when `holder` names a process known not to exist any more. */
  gone(holder: string): boolean;
}

/**
 * This process as a holder: another holder is gone when it is on this host
 * and its pid is not a running process (Linux `/proc`; elsewhere only
 * leases expire runs). This process's own pid is never gone.
 */
export function processHolder(): RunHolder {
  const host = Deno.hostname();
  const id = `${host}:${Deno.pid}`;
  return {
    id,
    gone(holder: string): boolean {
      const at = holder.lastIndexOf(":");
      const pid = Number(holder.slice(at + 1));
      if (holder.slice(0, at) !== host || !Number.isSafeInteger(pid) || pid === Deno.pid) {
        return false;
      }
      try {
        Deno.statSync("/proc/self");
      } catch {
        return false; // no /proc here: cannot tell
      }
      try {
        Deno.statSync(`/proc/${pid}`);
        return false;
      } catch {
        return true;
      }
    },
  };
}
