import assert from "node:assert/strict";
import { parseSimulateArgs } from "../../src/simulator/args.ts";
import { main } from "../../src/cli/simulate.ts";
import { UserError } from "../../src/errors.ts";
import { freshTopic, kafkaBrokers, uniqueName } from "../_support/services.ts";

Deno.test("parseSimulateArgs() reads every flag", () => {
  const a = parseSimulateArgs([
    "--brokers=a:1,b:2",
    "--topic",
    "devices",
    "--rate",
    "max",
    "--count",
    "100",
    "--devices",
    "3",
    "--antennas",
    "2",
    "--seed",
    "0",
    "--start",
    "2026-11-28T10:00Z",
    "--late-share",
    "0.1",
    "--max-lateness",
    "45s",
    "--malformed-share",
    "0",
    "--quiet",
    "--max-retry-time",
    "2m",
  ]);
  assert.deepEqual(a, {
    help: false,
    config: undefined,
    brokers: ["a:1", "b:2"],
    topic: "devices",
    rate: 0,
    count: 100,
    durationMs: undefined,
    devices: 3,
    antennas: 2,
    seed: 0,
    startMs: Date.UTC(2026, 10, 28, 10),
    lateShare: 0.1,
    maxLatenessMs: 45_000,
    malformedShare: 0,
    quiet: true,
    maxRetryTimeMs: 120_000,
  });
  assert.equal(parseSimulateArgs(["--duration", "1h30m"]).durationMs, 5_400_000);
  assert.equal(parseSimulateArgs([]).maxRetryTimeMs, 5 * 60_000, "default 5 minutes");
});

const BAD: [string[], RegExp][] = [
  [["--rate", "fast"], /--rate must be a positive number/],
  [["--rate", "0"], /--rate must be a positive number/],
  [["--count", "1.5"], /--count must be an integer >= 1, got "1.5"/],
  [["--devices", "0"], /--devices must be an integer >= 1/],
  [["--late-share", "2"], /--late-share must be a number between 0 and 1/],
  [["--duration", "ten"], /--duration must be a duration/],
  [["--max-retry-time", "soon"], /--max-retry-time must be a duration/],
  [["--count", "5", "--duration", "1m"], /either --count or --duration/],
  [["--start", "2026-11-28T10:00"], /--start must be an ISO 8601 time with a zone/],
  [["--brokers", "localhost"], /--brokers must be host:port/],
  [["--topic", "bad topic"], /--topic must be/],
  [["--bogus"], /Unknown option '--bogus'/],
  [["positional"], /positional/],
];

for (const [args, message] of BAD) {
  Deno.test(`parseSimulateArgs() rejects ${args.join(" ")}`, () => {
    assert.throws(() => parseSimulateArgs(args), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, message);
      assert.ok(!e.message.includes("\n"), "one line");
      return true;
    });
  });
}

Deno.test("main() exits 2 on a bad flag and 0 on --help", async () => {
  assert.equal(await main(["--rate", "fast"]), 2);
  assert.equal(await main(["--help"]), 0);
  assert.equal(
    await main(["--start", "2026-11-28T10:00Z", "--rate", "max", "--count", "1"]),
    2,
  );
});

Deno.test("simulate against Kafka prints no TimeoutNegativeWarning on stderr", async () => {
  const topic = await freshTopic("sim-warn", 1);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "-A", "main.ts", "simulate", "--brokers", kafkaBrokers().join(",")],
      ...["--topic", topic, "--rate", "max", "--count", "2000", "--quiet"],
    ],
    cwd: new URL("../..", import.meta.url).pathname,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.equal(JSON.parse(new TextDecoder().decode(out.stdout)).produced, 2000);
  assert.ok(!stderr.includes("TimeoutNegativeWarning"), stderr);
  assert.ok(!stderr.includes("Warning"), stderr);
});

Deno.test("simulate fails at once, in one line, on a missing topic with create_topics off", async () => {
  const dir = await Deno.makeTempDir();
  const config = `${dir}/pipeline.yaml`;
  await Deno.writeTextFile(
    config,
    `source:\n  kafka:\n    brokers: [${
      JSON.stringify(kafkaBrokers()[0])
    }]\n    create_topics: false\n`,
  );
  const topic = uniqueName("sim-missing");
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        ...["run", "-A", "main.ts", "simulate", "--config", config, "--topic", topic],
        ...["--count", "10", "--quiet"],
      ],
      cwd: new URL("../..", import.meta.url).pathname,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    const errors = stderr.split("\n").filter((l) => l.startsWith("error:"));
    assert.equal(errors.length, 1, stderr);
    assert.match(errors[0], new RegExp(`topic "${topic}" does not exist.*create_topics`));
    // Not taken for a broker that is still starting.
    assert.ok(!stderr.includes("Kafka is unreachable"), stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
