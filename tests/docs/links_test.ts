/**
 * The README and docs/ as a newcomer walks them: every relative link resolves
 * to a file or folder of the repository (and, for a `#fragment` into a
 * Markdown file, to one of its headings), the README stays a front page, and
 * every metric the process registers is named in the docs.
 */
import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";

const REPO = new URL("../../", import.meta.url).pathname;

async function markdownFiles(): Promise<string[]> {
  const files = [join(REPO, "README.md")];
  for await (const e of Deno.readDir(join(REPO, "docs"))) {
    if (e.isFile && e.name.endsWith(".md")) files.push(join(REPO, "docs", e.name));
  }
  return files.sort();
}

/** GitHub's heading anchor: lowercase, punctuation dropped, spaces to dashes. */
export function anchorOf(heading: string): string {
  return heading.trim().toLowerCase().replace(/`/g, "").replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    const m = !fenced && /^#{1,6} (.*)$/.exec(line);
    if (m) out.add(anchorOf(m[1]));
    // Bold paragraph leads ("**Observability** (…)") are linked like headings in these docs.
    const lead = !fenced && /^\*\*([^*]+)\*\*/.exec(line);
    if (lead) out.add(anchorOf(lead[1]));
  }
  return out;
}

/** Relative link targets of a Markdown text, outside code fences and code spans. */
function links(markdown: string): string[] {
  const out: string[] = [];
  let fenced = false;
  for (const line of markdown.split("\n")) {
    if (line.startsWith("```")) fenced = !fenced;
    if (fenced) continue;
    const text = line.replace(/`[^`]*`/g, "``");
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (!/^[a-z]+:/.test(m[1])) out.push(m[1]);
    }
  }
  return out;
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

Deno.test("README and docs: every relative link resolves", async () => {
  const broken: string[] = [];
  for (const file of await markdownFiles()) {
    const text = await Deno.readTextFile(file);
    for (const link of links(text)) {
      const [path, fragment] = link.split("#");
      const target = path ? join(dirname(file), path) : file;
      const where = `${relative(REPO, file)}: ${link}`;
      if (!(await exists(target))) {
        broken.push(`${where} (no such file)`);
      } else if (fragment && target.endsWith(".md")) {
        if (!anchors(await Deno.readTextFile(target)).has(fragment)) {
          broken.push(`${where} (no such heading)`);
        }
      }
    }
  }
  assert.deepEqual(broken, []);
});

Deno.test("README stays a front page of at most 250 lines", async () => {
  const lines = (await Deno.readTextFile(join(REPO, "README.md"))).split("\n").length;
  assert.ok(lines <= 250, `README.md has ${lines} lines`);
});

Deno.test("docs name every metric the process registers", async () => {
  const names = new Set<string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = join(dir, e.name);
      if (e.isDirectory) await walk(p);
      else if (p.endsWith(".ts")) {
        const src = await Deno.readTextFile(p);
        for (const m of src.matchAll(/\.(?:counter|gauge|histogram)\(\s*"([a-z_]+)"/g)) {
          names.add(m[1]);
        }
      }
    }
  };
  await walk(join(REPO, "src"));
  assert.ok(names.size > 30, `found only ${names.size} metric names: the pattern is stale`);
  let docs = "";
  for (const file of await markdownFiles()) docs += await Deno.readTextFile(file);
  assert.deepEqual([...names].filter((n) => !docs.includes(n)).sort(), []);
});

Deno.test("anchorOf() spells GitHub's heading anchors", () => {
  assert.equal(
    anchorOf("Editing pipeline.yaml while it runs"),
    "editing-pipelineyaml-while-it-runs",
  );
  assert.equal(
    anchorOf("Running on a VM against Kafka, Cloud SQL and GCS"),
    "running-on-a-vm-against-kafka-cloud-sql-and-gcs",
  );
  assert.equal(anchorOf("`batch.engine`"), "batchengine");
});
