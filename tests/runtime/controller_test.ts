/**
 * The reload controller of a running pipeline, without services: its
 * outcomes (rejected with every problem and its position, refused whole with
 * one line per key, unchanged, applied part by part, failed and given back),
 * one reload at a time, and the generation it starts from.
 */
import assert from "node:assert/strict";
import { type Plan, planFromYaml } from "../../src/config/mod.ts";
import { createReloadController, type PlanPart } from "../../src/runtime/mod.ts";
import type { Logger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";

const BASE = `
speed:
  window: 5m
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id }
    - name: app_bytes_total
      group_by: app
      description: Bytes per app.
batch:
  metrics:
    - { name: antenna_bytes_total, group_by: antenna_id, reconcile_with: antenna_bytes_total }
api:
  token: s3cret
`;

const FILE = "/tmp/p/pipeline.yaml";
const plan = (yaml: string): Plan => planFromYaml(yaml, { env: {}, file: FILE });

interface Captured {
  log: Logger;
  lines: { level: string; msg: string; fields: Record<string, unknown> }[];
}

function capture(): Captured {
  const lines: Captured["lines"] = [];
  const make = (base: Record<string, unknown>): Logger => ({
    debug: () => {},
    info: (msg, f = {}) => lines.push({ level: "info", msg, fields: { ...base, ...f } }),
    warn: (msg, f = {}) => lines.push({ level: "warn", msg, fields: { ...base, ...f } }),
    error: (msg, f = {}) => lines.push({ level: "error", msg, fields: { ...base, ...f } }),
    child: (f) => make({ ...base, ...f }),
  });
  return { log: make({}), lines };
}

function setup(parts: PlanPart[] = []) {
  let text = BASE;
  const registry = new Registry();
  const c = capture();
  const controller = createReloadController({
    plan: plan(BASE),
    file: FILE,
    parts,
    env: {},
    log: c.log,
    registry,
    read: () => Promise.resolve(text),
  });
  return {
    controller,
    registry,
    lines: c.lines,
    write: (t: string) => text = t,
    count: (result: string) =>
      registry.render().split("\n").find((l) =>
        l.startsWith(`config_reloads_total{result="${result}"}`)
      )?.split(" ")[1] ?? "0",
  };
}

Deno.test("reload(): an invalid file changes nothing and keeps every problem with its position", async () => {
  const applied: string[] = [];
  const s = setup([{ name: "x", apply: () => Promise.resolve(void applied.push("x")) }]);
  s.write(BASE.replace("  window: 5m", "  window: 5m\n  windw: 5m\n  flush_interval: fast"));
  const out = await s.controller.reload("watch");
  assert.equal(out.result, "rejected");
  assert.deepEqual(applied, []);
  const st = s.controller.status();
  assert.equal(st.generation, 1);
  assert.equal(st.rejected?.result, "rejected");
  assert.deepEqual(st.rejected?.problems.map((p) => [p.line, p.col, p.path]), [
    [4, 3, "speed.windw"],
    [5, 19, "speed.flush_interval"],
  ]);
  assert.match(
    st.rejected!.problems[0].text,
    /^\/tmp\/p\/pipeline\.yaml:4:3: speed\.windw: unknown key/,
  );
  assert.equal(s.lines.length, 1, "logged once");
  assert.equal(s.lines[0].level, "warn");
  assert.equal((s.lines[0].fields.problems as string[]).length, 2);
  assert.equal(s.count("rejected"), "1");
});

Deno.test("reload(): restart-only keys refuse the whole edit, one line per key at its place", async () => {
  const applied: string[] = [];
  const s = setup([{ name: "x", apply: () => Promise.resolve(void applied.push("x")) }]);
  s.write(
    // flush_interval alone would be live: it must not be half-applied either.
    BASE.replace("window: 5m", "window: 10m\n  flush_interval: 2s") +
      "source:\n  kafka:\n    topic: other\n",
  );
  const out = await s.controller.reload("signal");
  assert.equal(out.result, "refused");
  assert.deepEqual(applied, []);
  const p = s.controller.status().rejected!.problems;
  assert.deepEqual(p.map((x) => [x.path, x.line, x.col]), [
    ["source.kafka.topic", 17, 5],
    ["speed.window", 3, 3],
  ]);
  assert.match(
    p[1].text,
    /^\/tmp\/p\/pipeline\.yaml:3:3: speed\.window: cannot change .*a restart applies it$/,
  );
  assert.equal(s.controller.status().generation, 1);
  assert.equal(s.controller.plan.speed.flushIntervalMs, 1_000);
  assert.equal(s.count("refused"), "1");
});

Deno.test("reload(): a valid live edit goes through the parts in order and raises the generation", async () => {
  const calls: string[] = [];
  const part = (name: string): PlanPart => ({
    name,
    apply: (_next, diff, gen) => {
      calls.push(`${name}:${gen.generation}:${diff.changes.map((c) => c.key).join(",")}`);
      return Promise.resolve(name === "speed" ? { switch_offsets: { 0: 12 } } : undefined);
    },
  });
  const s = setup([part("speed"), part("batch")]);
  const before = s.controller.status().hash;
  s.write(BASE.replace("  window: 5m", "  window: 5m\n  flush_interval: 2s"));
  const out = await s.controller.reload("watch");
  assert.equal(out.result, "applied");
  assert.deepEqual(calls, ["speed:2:speed.flush_interval", "batch:2:speed.flush_interval"]);
  const st = s.controller.status();
  assert.equal(st.generation, 2);
  assert.notEqual(st.hash, before);
  assert.equal(st.plan.speed.flushIntervalMs, 2_000);
  assert.equal(s.controller.plan, st.plan);
  assert.equal(s.lines.length, 1);
  assert.deepEqual(s.lines[0].fields.switch_offsets, { 0: 12 });
  assert.ok(s.registry.render().includes("config_generation 2"));
  // The same text again: unchanged, nothing applied, counted.
  calls.length = 0;
  assert.equal((await s.controller.reload("signal")).result, "unchanged");
  assert.deepEqual(calls, []);
  assert.equal(s.count("unchanged"), "1");
});

Deno.test("reload(): a rejected attempt is shown until a good one, then cleared", async () => {
  const s = setup();
  s.write("speed: [");
  assert.equal((await s.controller.reload("watch")).result, "rejected");
  assert.ok(s.controller.status().rejected);
  s.write(BASE);
  assert.equal((await s.controller.reload("watch")).result, "unchanged");
  assert.equal(s.controller.status().rejected, undefined);
});

Deno.test("reload(): a part that fails leaves the active plan, and earlier parts get it back", async () => {
  const got: string[] = [];
  const s = setup([
    {
      name: "a",
      apply: (next) => Promise.resolve(void got.push(`a:${next.speed.flushIntervalMs}`)),
    },
    { name: "b", apply: () => Promise.reject(new Error("no room")) },
  ]);
  s.write(BASE.replace("  window: 5m", "  window: 5m\n  flush_interval: 2s"));
  const out = await s.controller.reload("watch");
  assert.equal(out.result, "failed");
  assert.deepEqual(got, ["a:2000", "a:1000"]);
  assert.equal(s.controller.status().generation, 1);
  assert.equal(s.controller.status().rejected?.error, "b: no room");
  assert.equal(s.count("failed"), "1");
});

Deno.test("reload(): reloads run one at a time, in order", async () => {
  const order: number[] = [];
  let n = 0;
  const s = setup([{
    name: "slow",
    apply: async (next) => {
      await new Promise((r) => setTimeout(r, 20));
      order.push(next.speed.flushIntervalMs);
    },
  }]);
  s.write(BASE.replace("  window: 5m", `  window: 5m\n  flush_interval: ${++n}s`));
  const a = s.controller.reload("watch");
  await Promise.resolve();
  s.write(BASE.replace("  window: 5m", `  window: 5m\n  flush_interval: ${++n}s`));
  const b = s.controller.reload("watch");
  await Promise.all([a, b]);
  assert.deepEqual(order, [2_000]);
  assert.equal(s.controller.status().generation, 2);
});

Deno.test("createReloadController() starts from a stored generation; a reload is the next one", async () => {
  const gens: number[] = [];
  const controller = createReloadController({
    plan: plan(BASE),
    generation: 7,
    appliedAt: 1_000,
    file: FILE,
    parts: [{ name: "x", apply: (_n, _d, gen) => Promise.resolve(void gens.push(gen.generation)) }],
    env: {},
    log: capture().log,
    registry: new Registry(),
    clock: () => 5_000,
    read: () => Promise.resolve(BASE.replace("window: 5m", "window: 5m\n  flush_interval: 2s")),
  });
  assert.equal(controller.status().generation, 7);
  assert.equal(controller.status().appliedAt, 1_000);
  const out = await controller.reload("watch");
  assert.equal(out.result, "applied");
  assert.deepEqual(gens, [8]);
  assert.equal(controller.status().generation, 8);
  assert.equal(controller.status().appliedAt, 5_000);
});
