/**
 * `simulate` started before its broker: a private broker (its own ports and
 * state folder, the stack's jars; the shared one stays up for everyone else)
 * is down when the simulator starts and comes up about 10 s later; the
 * simulator waits for it through topic creation and its first metadata
 * fetch, says so in one pair of lines, and the topic then holds every
 * message it reported produced, exactly once and in order per partition,
 * recomputed here from the generator's deterministic sequence.
 */
import assert from "node:assert/strict";
import { delay } from "../../src/async/delay.ts";
import { createKafkaService } from "../../src/stack/kafka.ts";
import { REPO_ROOT, STATE_DIR } from "../../src/stack/mod.ts";
import { expectedPerPartition, readAll } from "../_support/private_kafka.ts";

const PORT = 19292;
const BROKERS = [`127.0.0.1:${PORT}`];
const broker = createKafkaService({
  port: PORT,
  controllerPort: 19293,
  dir: `${STATE_DIR}/kafka-late-start-test`,
});
const PARTITIONS = 3;
const COUNT = 20_000;
const SIM = { seed: 13, devices: 20, antennas: 5 };
const decoder = new TextDecoder();

Deno.test({
  name: "simulate started while its broker is down waits for it and produces every message once",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Not wiped: formatting the storage again would add ~13 s of JVM start to
    // every run, and each run writes its own topic.
    await broker.down();
    const topic = `late-start-${Date.now()}`;
    const stderrFile = await Deno.makeTempFile({ suffix: ".log" });
    try {
      const sim = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "main.ts",
          "simulate",
          ...["--brokers", BROKERS[0], "--topic", topic, "--rate", "max", "--count", `${COUNT}`],
          ...["--seed", `${SIM.seed}`, "--devices", `${SIM.devices}`, "--antennas", "5"],
          ...["--late-share", "0", "--malformed-share", "0", "--max-retry-time", "2m"],
        ],
        cwd: REPO_ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let exited = false;
      const output = sim.output().finally(() => exited = true);

      await delay(10_000);
      assert.equal(exited, false, "simulate waits for the broker instead of failing at once");
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
      assert.equal(away.length, 1, `one line while the broker is not up:\n${away.join("\n")}`);
      assert.equal(back.length, 1, `one line when it is:\n${back.join("\n")}`);
      const created = lines.findIndex((l) => l.includes("created Kafka topics"));
      assert.ok(
        created > lines.indexOf(away[0]),
        "the topic was created by the same simulate once the broker came",
      );

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
