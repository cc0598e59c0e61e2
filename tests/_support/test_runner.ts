/**
 * `deno task test [deno test args/files]`: starts the local stack, hands its
 * addresses to the tests (TEST_KAFKA_BROKERS, TEST_PG_URL, TEST_GCS_ENDPOINT),
 * runs `deno test` (default `tests/`), and ends with the plain line
 * `N passed, M failed` counted from the JUnit report, which CI recognises.
 * The exit code is deno test's; a missing report or a stack that cannot start
 * counts as a failure.
 */
import { REPO_ROOT, stackUp, STATE_DIR } from "../../src/stack/mod.ts";
import { countJUnit, summaryLine, type TestCounts } from "./junit.ts";

/** Where the report of the latest run is kept, for CI artefacts and humans. */
export const JUNIT_PATH = `${STATE_DIR}/junit.xml`;

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

/** Adds the default `tests/` unless some argument names a file or folder. */
async function testArgs(args: string[]): Promise<string[]> {
  for (const a of args) {
    if (!a.startsWith("-") && (await exists(a.startsWith("/") ? a : `${REPO_ROOT}/${a}`))) {
      return args;
    }
  }
  return [...args, "tests/"];
}

export async function main(args: string[]): Promise<number> {
  let info;
  try {
    info = await stackUp();
  } catch (e) {
    console.error(`error: the local stack did not start: ${e instanceof Error ? e.message : e}`);
    console.log(summaryLine({ passed: 0, failed: 1, skipped: 0 }));
    return 1;
  }

  // Each run writes its own report: engineers share one working tree and may
  // run tests at the same time.
  await Deno.mkdir(`${STATE_DIR}/test-results`, { recursive: true });
  const ownReport = `${STATE_DIR}/test-results/junit-${Deno.pid}.xml`;
  await Deno.remove(ownReport).catch(() => {});

  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "-A",
      "--reporter=dot",
      `--junit-path=${ownReport}`,
      ...(await testArgs(args)),
    ],
    cwd: REPO_ROOT,
    env: {
      TEST_KAFKA_BROKERS: info.kafkaBrokers,
      TEST_PG_URL: info.pgUrl,
      TEST_GCS_ENDPOINT: info.gcsEndpoint,
    },
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const { code } = await child.status;

  let counts: TestCounts;
  let exitCode = code;
  try {
    counts = countJUnit(await Deno.readTextFile(ownReport));
    await Deno.rename(ownReport, JUNIT_PATH);
  } catch {
    console.error(`error: deno test wrote no JUnit report (${ownReport})`);
    counts = { passed: 0, failed: 0, skipped: 0 };
    exitCode = code || 1;
  }
  // A module that fails to load or an error outside any test fails the run
  // without a failed test case: count it, so the line never looks green.
  if (exitCode !== 0 && counts.failed === 0) counts = { ...counts, failed: 1 };
  console.log(summaryLine(counts));
  return exitCode;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
