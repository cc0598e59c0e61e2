/**
 * `deno task bench:validate`: what decoding and validating one message costs
 * on the speed layer's thread, with no I/O: `validateMessage` (UTF-8 decode,
 * JSON.parse, schema checks) over 500,000 generated events, three passes.
 * BENCHMARKS.md ("Speed layer") sets it beside kafkajs' own cost per message.
 */
import { planFromYaml } from "../src/config/mod.ts";
import { validateMessage } from "../src/core/mod.ts";
import { createGenerator } from "../src/simulator/mod.ts";

const plan = planFromYaml("source: { kind: simulator }\n", { env: {} });
const gen = createGenerator({ seed: 1, devices: 100_000, startMs: Date.now() - 3_600_000 });
const messages = Array.from({ length: 500_000 }, () => gen.next().value);
const now = Date.now();
for (let pass = 1; pass <= 3; pass++) {
  const t = performance.now();
  let valid = 0;
  for (const m of messages) if (validateMessage(m, plan.schema, now).ok) valid++;
  const us = ((performance.now() - t) * 1000) / messages.length;
  console.log(`pass ${pass}: ${us.toFixed(2)} µs per message (${valid} valid)`);
}
