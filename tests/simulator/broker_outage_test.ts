/**
 * `simulate --rate 1000` outlives its broker: a private broker (its own ports
 * and state folder, the stack's jars; the shared one stays up for everyone
 * else) is killed for 20 s while the simulator runs and restarted on the same
 * data; then the topic holds every message the simulator reported produced,
 * exactly once and in order per partition, recomputed here from the
 * generator's deterministic sequence (its event times aside, which follow the
 * wall clock in live mode).
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { ensureTopics } from "../../src/kafka/mod.ts";
import { createKafkaService } from "../../src/stack/kafka.ts";
import { REPO_ROOT, STATE_DIR } from "../../src/stack/mod.ts";
import { expectedPerPartition, producedCount, readAll } from "../_support/private_kafka.ts";

const PORT = 19192;
const BROKERS = [`127.0.0.1:${PORT}`];
const broker = createKafkaService({
  port: PORT,
  controllerPort: 19193,
  dir: `${STATE_DIR}/kafka-outage-test`,
});
const PARTITIONS = 3;
/** 30 s at 1 000/s, about 5 of them before the broker is killed. */
const COUNT = 30_000;
const SIM = { seed: 11, devices: 20, antennas: 5 };
const decoder = new TextDecoder();
const produced = (topic: string) => producedCount(BROKERS, topic);

Deno.test({
  name: "simulate --rate 1000 loses and duplicates nothing when its broker is down for 20 s",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await broker.down();
    await broker.wipe();
    await broker.up();
    const topic = `outage-${Date.now()}`;
    const stderrFile = await Deno.makeTempFile({ suffix: ".log" });
    try {
      await ensureTopics({ brokers: BROKERS, topics: [{ topic, partitions: PARTITIONS }] });
      const sim = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "main.ts",
          "simulate",
          ...["--brokers", BROKERS[0], "--topic", topic, "--rate", "1000", "--count", `${COUNT}`],
          ...["--seed", `${SIM.seed}`, "--devices", `${SIM.devices}`, "--antennas", "5"],
          ...["--late-share", "0", "--malformed-share", "0"],
        ],
        cwd: REPO_ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const output = sim.output();

      // Killed in full flow, with messages on the wire.
      // (A new topic's leader may not be known yet: not leader answers count as 0.)
      while (await produced(topic).catch(() => 0) < 5_000) await delay(200);
      const { pid } = await broker.status();
      assert.ok(pid, "the private broker runs");
      Deno.kill(pid, "SIGKILL");
      await delay(20_000);
      await broker.up();

      const { code, stdout, stderr } = await output;
      const err = decoder.decode(stderr);
      await Deno.writeTextFile(stderrFile, err);
      assert.equal(code, 0, `simulate failed; its stderr: ${stderrFile}\n${err.slice(-2000)}`);
      const summary = JSON.parse(decoder.decode(stdout).trim().split("\n").at(-1)!);
      assert.equal(summary.produced, COUNT, JSON.stringify(summary));

      const lines = err.split("\n");
      const away = lines.filter((l) => l.includes("Kafka is unreachable"));
      const back = lines.filter((l) => l.includes("Kafka is back"));
      assert.equal(away.length, 1, `one line when the broker goes away:\n${away.join("\n")}`);
      assert.equal(back.length, 1, `one line when it is back:\n${back.join("\n")}`);
      assert.ok(!err.includes("TimeoutNegativeWarning"), "no TimeoutNegativeWarning");

      const actual = await readAll(BROKERS, topic, PARTITIONS);
      const expected = expectedPerPartition(SIM, summary.produced, PARTITIONS);
      for (let p = 0; p < PARTITIONS; p++) {
        assert.equal(actual[p].length, expected[p].length, `partition ${p}: count`);
        assert.ok(
          actual[p].every((m, i) => m === expected[p][i]),
          `partition ${p}: every message once, in order`,
        );
      }
    } finally {
      await broker.down();
    }
  },
});
