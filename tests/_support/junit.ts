/**
 * Counts the results in the JUnit XML that `deno test --junit-path` writes, so
 * the test runner can print the plain `N passed, M failed` line CI recognises.
 * Deno writes test steps as extra `<testcase name="parent > step">` entries;
 * they are left out so the counts match Deno's own summary of tests.
 */

export interface TestCounts {
  readonly passed: number;
  readonly failed: number;
  /** Tests marked `ignore` (Deno writes them as `<skipped/>`). */
  readonly skipped: number;
}

const ENTITIES: Record<string, string> = {
  "&lt;": "<",
  "&gt;": ">",
  "&quot;": '"',
  "&apos;": "'",
  "&amp;": "&",
};

function unescapeXml(s: string): string {
  return s.replace(/&(lt|gt|quot|apos|amp);/g, (m) => ENTITIES[m]);
}

function attr(tag: string, name: string): string {
  const m = tag.match(new RegExp(`\\s${name}="([^"]*)"`));
  return m ? unescapeXml(m[1]) : "";
}

/** Counts passed, failed and skipped tests (steps excluded) in a Deno JUnit report. */
export function countJUnit(xml: string): TestCounts {
  const cases: { name: string; suite: string; status: "passed" | "failed" | "skipped" }[] = [];
  const re = /<testcase\b([^>]*?)(\/>|>([\s\S]*?)<\/testcase>)/g;
  for (const m of xml.matchAll(re)) {
    const body = m[3] ?? "";
    const status = /<(failure|error)\b/.test(body)
      ? "failed"
      : /<skipped\b/.test(body)
      ? "skipped"
      : "passed";
    cases.push({ name: attr(m[1], "name"), suite: attr(m[1], "classname"), status });
  }
  const names = new Set(cases.map((c) => `${c.suite}\0${c.name}`));
  const isStep = (c: { name: string; suite: string }) => {
    // "a > b > c" is a step if "a > b" (or "a") is a test of the same file.
    const parts = c.name.split(" > ");
    for (let i = parts.length - 1; i > 0; i--) {
      if (names.has(`${c.suite}\0${parts.slice(0, i).join(" > ")}`)) return true;
    }
    return false;
  };
  let passed = 0, failed = 0, skipped = 0;
  for (const c of cases) {
    if (isStep(c)) continue;
    if (c.status === "passed") passed++;
    else if (c.status === "failed") failed++;
    else skipped++;
  }
  return { passed, failed, skipped };
}

/** The summary line: `N passed, M failed`, plus `, K skipped` only when K > 0. */
export function summaryLine(c: TestCounts): string {
  return `${c.passed} passed, ${c.failed} failed${c.skipped > 0 ? `, ${c.skipped} skipped` : ""}`;
}
