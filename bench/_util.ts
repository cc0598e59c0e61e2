/**
 * Small helpers shared by the benchmarks: a peak-RSS sampler (Deno's own
 * resident set, polled, since the OS high-water mark would include earlier
 * phases of the same process), percentiles and Markdown tables.
 */

/** Samples this process's RSS every `everyMs` until `stop()`; returns the peak in bytes. */
export function sampleRss(everyMs = 100): { stop(): number; peak(): number } {
  let peak = Deno.memoryUsage().rss;
  const timer = setInterval(() => {
    const rss = Deno.memoryUsage().rss;
    if (rss > peak) peak = rss;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return peak;
    },
    peak: () => peak,
  };
}

/** The `p`-th percentile (0..100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank];
}

/** A Markdown table. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]) {
  const line = (cells: readonly string[]) => `| ${cells.join(" | ")} |`;
  return [line(header), line(header.map(() => "---")), ...rows.map(line)].join("\n");
}

/**
 * Replaces (or appends) the `## <heading>` section of a Markdown file, leaving
 * other sections alone.
 */
export async function writeSection(path: string, heading: string, body: string): Promise<void> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch {
    text = "# Benchmarks\n";
  }
  const start = text.indexOf(`## ${heading}\n`);
  const section = `## ${heading}\n\n${body.trim()}\n`;
  if (start < 0) {
    text = text.trimEnd() + "\n\n" + section;
  } else {
    const next = text.indexOf("\n## ", start + 3);
    text = text.slice(0, start) + section + (next < 0 ? "" : text.slice(next));
  }
  await Deno.writeTextFile(path, text);
}

export const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(0);

/**
 * The V8 flags of the `start` task (deno.json): the speed and batch layers run
 * inside `start`, so their benchmarks run their code with the same flags.
 */
export function startV8Flags(): string[] {
  const deno = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  return String(deno.tasks.start).match(/--v8-flags=\S+/g) ?? [];
}

/**
 * Runs this script again in a child process with the `start` task's V8 flags
 * (once: the child sees BENCH_START_FLAGS) and exits with its code; returns in
 * the child.
 */
export async function reexecWithStartFlags(script: URL): Promise<void> {
  if (Deno.env.get("BENCH_START_FLAGS")) return;
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...startV8Flags(), script.pathname, ...Deno.args],
    env: { BENCH_START_FLAGS: "1" },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}
