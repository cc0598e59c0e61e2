/**
 * Starts, stops and probes the local Superset web server: gunicorn (threaded,
 * one worker, like Superset's own container) detached from the caller, its pid
 * and log in the state folder, bound to loopback. `start` returns once
 * `/health` answers, and returns at once when it already does.
 */
import { join } from "node:path";
import { delay } from "../src/async/delay.ts";
import { log } from "../src/log.ts";
import { baseUrl, HOST, PORT, supersetPaths } from "./_paths.ts";
import { readText, supersetEnv } from "./_run.ts";

const logger = log.child({ component: "superset" });

export interface ServerStatus {
  readonly url: string;
  /** Pid from the pid file, when that process is alive. */
  readonly pid?: number;
  readonly healthy: boolean;
}

function alive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT"); // signal 0 is not offered; SIGCONT is harmless
    return true;
  } catch {
    return false;
  }
}

async function pidFromFile(): Promise<number | undefined> {
  const text = await readText(supersetPaths().pidFile);
  const pid = Number(text?.trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}

/** True when `GET /health` answers OK within a second. */
export async function healthy(): Promise<boolean> {
  try {
    const r = await fetch(`${baseUrl()}/health`, { signal: AbortSignal.timeout(1000) });
    await r.body?.cancel();
    return r.ok;
  } catch {
    return false;
  }
}

export async function status(): Promise<ServerStatus> {
  return { url: baseUrl(), pid: await pidFromFile(), healthy: await healthy() };
}

/**
 * Starts the server unless it is healthy already, then waits for `/health`
 * (default 3 minutes: a cold start on a busy machine is slow).
 */
export async function start(timeoutMs = 180_000): Promise<ServerStatus> {
  if (await healthy()) return status();
  const p = supersetPaths();
  let pid = await pidFromFile();
  if (pid === undefined) {
    const gunicorn = [
      p.bin("gunicorn"),
      "--bind",
      `${HOST}:${PORT}`,
      "--workers",
      "1",
      "--worker-class",
      "gthread",
      "--threads",
      "8",
      "--timeout",
      "120",
      "--limit-request-line",
      "0",
      "--limit-request-field_size",
      "0",
      // gunicorn 27 opens a control socket under ~/.gunicorn by default: keep
      // it in our state folder so nothing is written outside it.
      "--control-socket",
      join(p.state, "gunicorn.ctl"),
      "superset.app:create_app()",
    ];
    const quoted = gunicorn.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
    // setsid detaches it from our session, so it outlives this command and a
    // Ctrl-C here. A background job of a non-interactive sh is no group
    // leader, so setsid execs in place and $! is the gunicorn master's pid.
    const script = `setsid ${quoted} >>'${p.logFile}' 2>&1 </dev/null & echo $!`;
    const out = await new Deno.Command("sh", {
      args: ["-c", script],
      env: supersetEnv(),
      cwd: p.state,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    pid = Number(new TextDecoder().decode(out.stdout).trim());
    await Deno.writeTextFile(p.pidFile, `${pid}\n`);
    logger.info("superset starting", { pid, url: baseUrl(), log: p.logFile });
  }
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (await healthy()) {
      logger.info("superset healthy", { pid, ms: Math.round(performance.now() - t0) });
      return status();
    }
    if (!alive(pid)) {
      throw new Error(`Superset exited during start-up: see ${p.logFile}`);
    }
    await delay(500);
  }
  throw new Error(`Superset not healthy after ${timeoutMs} ms: see ${p.logFile}`);
}

/** Stops the server started by {@link start} (by its pid file only). */
export async function stop(timeoutMs = 20_000): Promise<void> {
  const p = supersetPaths();
  const pid = await pidFromFile();
  if (pid === undefined) return;
  Deno.kill(pid, "SIGTERM"); // gunicorn's master stops its workers on TERM
  const t0 = performance.now();
  while (alive(pid) && performance.now() - t0 < timeoutMs) {
    await delay(200);
  }
  if (alive(pid)) Deno.kill(pid, "SIGKILL");
  await Deno.remove(p.pidFile).catch(() => {});
  logger.info("superset stopped", { pid });
}
