/**
 * `help` lists every task of deno.json (so a new task cannot be left out),
 * and the ./deno wrapper's output to a pipe is plain text.
 */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { TASK_DESCRIPTIONS } from "../../src/cli/help.ts";

const REPO = new URL("../..", import.meta.url).pathname;
const decoder = new TextDecoder();

async function run(cmd: string, args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: REPO,
    // With an env given, only it: the test's own NO_COLOR must not leak in.
    clearEnv: env !== undefined,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("help lists every task of deno.json with its description", async () => {
  const { code, stdout } = await run(Deno.execPath(), ["run", "-A", "main.ts", "help"]);
  assert.equal(code, 0);
  const tasks = Object.keys(denoJson.tasks);
  assert.ok(tasks.includes("superset") && tasks.includes("test") && tasks.includes("bench:speed"));
  for (const task of tasks) {
    assert.match(stdout, new RegExp(`^  ${task.replace(":", "\\:")} +\\S`, "m"), task);
    const description = TASK_DESCRIPTIONS[task];
    assert.ok(description, `task "${task}" of deno.json has no description in src/cli/help.ts`);
    assert.ok(stdout.includes(description.split("\n")[0]), task);
  }
});

Deno.test("./deno writes no ANSI colour codes when its output goes to a pipe", async () => {
  // A task, so Deno prints its own `Task check ...` line, which it colours otherwise.
  const env = { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "" };
  const { code, stdout, stderr } = await run(`${REPO}deno`, ["task", "check"], env);
  assert.equal(code, 0, stderr);
  assert.match(stderr, /Task check/);
  assert.ok(!stdout.includes("\x1b["), JSON.stringify(stdout.slice(0, 200)));
  assert.ok(!stderr.includes("\x1b["), JSON.stringify(stderr.slice(0, 200)));
});
