/**
 * schemathesis (the OpenAPI fuzzer, from PyPI) in the suite's own virtualenv
 * under `.state/schemathesis/`: installed on first use, pinned, and skipped
 * when a marker says this version is there, so a fresh machine (`.ci/run`,
 * no stdin) needs only python3 with venv.
 */
const REPO = new URL("../..", import.meta.url).pathname;

/** The pinned release: a new one may add checks, so it changes on purpose. */
export const SCHEMATHESIS_VERSION = "4.32.5";

const STATE = `${REPO}.state/schemathesis`;
const VENV = `${STATE}/venv`;
const MARKER = `${STATE}/installed`;

async function run(
  cmd: string,
  args: string[],
  cwd?: string,
): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    env: { PIP_NO_INPUT: "1", PIP_DISABLE_PIP_VERSION_CHECK: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

async function runOk(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    const tail = r.output.trim().split("\n").slice(-20).join("\n");
    throw new Error(`${cmd} ${args.join(" ")} exited with ${r.code}:\n${tail}`);
  }
}

/** The path of the `schemathesis` command, installing it first if needed. */
export async function ensureSchemathesis(): Promise<string> {
  const bin = `${VENV}/bin/schemathesis`;
  const marker = await Deno.readTextFile(MARKER).catch(() => "");
  if (marker.trim() === SCHEMATHESIS_VERSION) return bin;
  await Deno.mkdir(STATE, { recursive: true });
  try {
    await Deno.stat(`${VENV}/bin/python`);
  } catch {
    await runOk(Deno.env.get("SCHEMATHESIS_PYTHON") ?? "python3", ["-m", "venv", VENV]);
  }
  await runOk(`${VENV}/bin/pip`, ["install", "-q", `schemathesis==${SCHEMATHESIS_VERSION}`]);
  await Deno.writeTextFile(MARKER, SCHEMATHESIS_VERSION + "\n");
  return bin;
}

/**
 * Runs schemathesis with `args` in `cwd` (where it keeps its `.schemathesis/`
 * cache: a temporary folder, not the repository); its exit code and output.
 */
export async function runSchemathesis(
  args: string[],
  cwd: string,
): Promise<{ code: number; output: string }> {
  return await run(await ensureSchemathesis(), args, cwd);
}
