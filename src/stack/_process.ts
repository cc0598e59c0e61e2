/**
 * Process plumbing shared by the stack's services: run a command to completion,
 * start a detached daemon (own session, output to a log file, pid file) that
 * outlives the Deno process, check and stop it by pid, and wait for a TCP port.
 */
import { delay } from "../async/delay.ts";
import { UserError } from "../errors.ts";

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

const decoder = new TextDecoder();

/** Runs `cmd args…` to completion and captures its output. */
export async function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, {
      args,
      cwd: options.cwd,
      env: options.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new UserError(`${cmd} not found`);
    throw e;
  }
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Like `run`, but throws with the command's last output lines when it fails. */
export async function runChecked(
  cmd: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<RunResult> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) {
    const tail = (r.stderr + r.stdout).trim().split("\n").slice(-15).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} exited with ${r.code}:\n${tail}`);
  }
  return r;
}

/** Whether an executable is on PATH. */
export async function onPath(cmd: string): Promise<boolean> {
  const r = await run("bash", ["-c", `command -v "$1"`, "_", cmd]);
  return r.code === 0;
}

/**
 * Starts `cmd args…` detached: `setsid` gives it its own session so it survives
 * the Deno process and a Ctrl-C in the caller's terminal; stdin is /dev/null
 * and stdout/stderr are appended to `logFile`. In a non-interactive bash the
 * background job is not a group leader, so setsid execs in place and `$!` is
 * the daemon's own pid, which is written to `pidFile`.
 */
export async function spawnDetached(
  cmd: string,
  args: string[],
  options: { logFile: string; pidFile: string; cwd?: string; env?: Record<string, string> },
): Promise<number> {
  const script = 'log="$1"; shift; setsid "$@" >>"$log" 2>&1 </dev/null & echo $!';
  const r = await runChecked("bash", ["-c", script, "_", options.logFile, cmd, ...args], {
    cwd: options.cwd,
    env: options.env,
  });
  const pid = Number(r.stdout.trim());
  await Deno.writeTextFile(options.pidFile, `${pid}\n`);
  return pid;
}

/** The command line of a live process, or undefined when it is gone. */
export async function cmdline(pid: number): Promise<string | undefined> {
  try {
    const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    // A zombie has an empty cmdline: treat it as gone.
    return raw.length > 0 ? raw.replaceAll("\0", " ") : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` is a live (non-zombie) process. Used while a daemon starts: its
 * command line can read empty for a moment while the launcher re-execs (java
 * does), which `livePid` would take for an exit.
 */
export async function pidRunning(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/**
 * The pid in `pidFile` if that process is alive and its command line contains
 * `marker` (so a recycled pid of an unrelated process is not mistaken for ours).
 * If the pid file is missing or stale but a live process carries the marker
 * (the file was deleted under a running daemon, e.g. by `rm -rf .state/gcs`),
 * that process is adopted and the pid file rewritten (unless `adopt: false`), so it can still be
 * reported and stopped rather than squatting on its port.
 */
export async function livePid(
  pidFile: string,
  marker: string,
  options: { adopt?: boolean } = {},
): Promise<number | undefined> {
  let pid = NaN;
  try {
    pid = Number((await Deno.readTextFile(pidFile)).trim().split("\n")[0]);
  } catch {
    // no pid file: look for the process below
  }
  if (Number.isInteger(pid) && pid > 0 && (await cmdline(pid))?.includes(marker)) return pid;
  if (options.adopt === false) return undefined;
  const found = await findProcess(marker);
  if (found !== undefined) {
    await Deno.mkdir(pidFile.slice(0, pidFile.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(pidFile, `${found}\n`);
  }
  return found;
}

/** The pid of a live process whose command line contains `marker`, if any. */
async function findProcess(marker: string): Promise<number | undefined> {
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    const line = await cmdline(pid);
    // Skip shells and tools that merely mention the path in their arguments.
    if (line?.includes(marker) && !/^(bash|sh|setsid|runuser|timeout) /.test(line)) return pid;
  }
  return undefined;
}

/** SIGTERM, wait up to `graceMs` for the process to exit, then SIGKILL. */
export async function stopPid(pid: number, graceMs: number): Promise<void> {
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!(await cmdline(pid))) return;
    await delay(200);
  }
  try {
    Deno.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export async function portOpen(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Polls `probe` until it returns true or `timeoutMs` passes. While waiting,
 * `alive` is asked whether the daemon is still running, so a crash fails fast
 * with the tail of its log instead of waiting out the timeout.
 */
export async function waitFor(
  what: string,
  probe: () => Promise<boolean>,
  options: { timeoutMs: number; alive?: () => Promise<boolean>; logFile?: string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  while (true) {
    if (await probe().catch(() => false)) return;
    if (options.alive && !(await options.alive())) {
      throw new Error(`${what} exited during startup${await logTail(options.logFile)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${what} not ready after ${options.timeoutMs / 1000}s${await logTail(options.logFile)}`,
      );
    }
    await delay(250);
  }
}

/** The last lines of a log file, formatted to append to an error message. */
export async function logTail(file: string | undefined, lines = 20): Promise<string> {
  if (!file) return "";
  try {
    const text = await Deno.readTextFile(file);
    return `; last lines of ${file}:\n` + text.trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
