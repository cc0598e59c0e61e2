/**
 * Running the venv's tools (pip, superset) with the environment our config
 * expects, capturing their output so a failure can show its tail instead of a
 * bare exit code.
 */
import { UserError } from "../src/errors.ts";
import { supersetPaths } from "./_paths.ts";

/** The environment every Superset command and the server run with. */
export function supersetEnv(): Record<string, string> {
  const p = supersetPaths();
  return {
    SUPERSET_CONFIG_PATH: p.config,
    ANTENNA_SUPERSET_STATE: p.state,
    FLASK_APP: "superset",
    PYTHONUNBUFFERED: "1",
    // Superset and its libraries ask for nothing interactive, but pip might.
    PIP_NO_INPUT: "1",
  };
}

export interface RunResult {
  readonly code: number;
  readonly output: string;
}

/** Runs `cmd args…`, returning exit code and combined output (never throws on exit code). */
export async function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  const out = await new Deno.Command(cmd, {
    args,
    env: { ...supersetEnv(), ...options.env },
    cwd: options.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

/** Like {@link run} but throws with the output's tail when the command fails. */
export async function runOk(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) {
    const tail = r.output.trim().split("\n").slice(-25).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} exited with ${r.code}:\n${tail}`);
  }
  return r.output;
}

/** Hex SHA-256 of a string, for marker files. */
export async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** The value after `--name` in `args`, if given; a flag without a value is a user error. */
export function optionValue(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = args[i + 1];
  if (v === undefined || v.startsWith("--")) throw new UserError(`${name} needs a value`);
  return v;
}
