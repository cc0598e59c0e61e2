/**
 * The README's sample outputs are what the commands really print: each
 * sample is run here and compared line by line.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const REPO = new URL("../../", import.meta.url).pathname;

/** The lines of the README's code block that follows the line `$ <command>`. */
async function readmeSample(command: string): Promise<string[]> {
  const lines = (await Deno.readTextFile(join(REPO, "README.md"))).split("\n");
  const start = lines.indexOf(`$ ${command}`);
  assert.ok(start >= 0, `the README has no sample of ${command}`);
  const end = lines.indexOf("```", start);
  return lines.slice(start + 1, end);
}

Deno.test("README: the sample of `check` on a broken file is its real output", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(
      join(REPO, "tests/testdata/config/readme_broken.yaml"),
      join(dir, "broken.yaml"),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        "--config",
        join(REPO, "deno.json"),
        join(REPO, "main.ts"),
        "check",
        "broken.yaml",
      ],
      cwd: dir,
      env: { NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 1);
    const printed = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.deepEqual(
      printed.trimEnd().split("\n"),
      await readmeSample("./deno task check broken.yaml"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
