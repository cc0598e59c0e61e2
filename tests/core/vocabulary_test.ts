/**
 * The core is the bottom of the layers: it imports only itself, so the config
 * (which takes its vocabulary from here) and every layer can depend on it
 * without a loop.
 */
import assert from "node:assert/strict";

Deno.test("src/core/ imports nothing outside src/core/ (npm and node built-ins aside)", async () => {
  const dir = new URL("../../src/core/", import.meta.url);
  const outside: string[] = [];
  let files = 0;
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
    files++;
    const text = await Deno.readTextFile(new URL(entry.name, dir));
    for (const [, spec] of text.matchAll(/^(?:import|export)[^;]*?from\s+"([^"]+)"/gms)) {
      if (spec.startsWith("../")) outside.push(`${entry.name}: ${spec}`);
    }
  }
  assert.ok(files > 5, "src/core/ was read");
  assert.deepEqual(outside, []);
});
