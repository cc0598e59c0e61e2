/**
 * Turns a YAML document into plain values while remembering where every value
 * and key sits (line:col per config path), and substitutes `${VAR}` in scalars
 * on the way. Spec-agnostic: the linter checks the result against the spec and
 * uses the positions to point at each problem.
 */

import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } from "yaml";
import type { Document, Node } from "yaml";
import { type Env, interpolate } from "./interpolate.ts";
import type { Problem } from "./problem.ts";

/** A value already reported as a problem: the linter uses the default silently. */
export const BAD: unique symbol = Symbol("bad");

export interface Position {
  readonly line: number;
  readonly col: number;
}

export interface Located {
  /** Where the value starts. */
  readonly value: Position;
  /** Where its key starts (map entries only). */
  readonly key?: Position;
}

export interface YamlTree {
  /** The document as plain JS, with `BAD` where a scalar could not be read. */
  readonly value: unknown;
  readonly positions: ReadonlyMap<string, Located>;
  /** Paths whose scalar came (partly) from `${VAR}`: numbers/bools may be spelled as text. */
  readonly interpolated: ReadonlySet<string>;
  readonly problems: readonly Problem[];
}

/** Appends a key to a config path: `speed` + `metrics` → `speed.metrics`. */
export function childPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return path === "" ? key : `${path}.${key}`;
}

/** Parses `text`, reporting syntax errors and env problems with their position. */
export function readYamlTree(text: string, file: string, env: Env): YamlTree {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  const problems: Problem[] = [];
  const positions = new Map<string, Located>();
  const interpolated = new Set<string>();
  const at = (offset: number): Position => {
    const p = lc.linePos(offset);
    return { line: p.line, col: p.col };
  };

  for (const e of doc.errors) {
    const p = at(e.pos[0]);
    // yaml's messages end with a source excerpt after a blank line: keep the first line.
    const message = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    problems.push({ file, ...p, path: "", message, kind: "syntax" });
  }
  if (problems.length > 0) return { value: BAD, positions, interpolated, problems };

  const walk = (node: unknown, path: string): unknown => {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) return walk(node.resolve(doc as Document), path);
    const n = node as Node;
    if (n.range && !positions.has(path)) positions.set(path, { value: at(n.range[0]) });
    if (isScalar(n)) {
      if (typeof n.value !== "string") return n.value;
      const r = interpolate(n.value, env);
      if (r.ok) {
        if (r.replaced) interpolated.add(path);
        return r.value;
      }
      problems.push({
        file,
        ...at(envOffset(text, n.range, n.value, r.index)),
        path,
        message: r.message,
        kind: "env",
      });
      return BAD;
    }
    if (isMap(n)) {
      const out: Record<string, unknown> = {};
      for (const pair of n.items) {
        const keyNode = pair.key as Node | null;
        const key = isScalar(keyNode) ? keyNode.value : undefined;
        const keyPos = keyNode?.range ? at(keyNode.range[0]) : positions.get(path)?.value;
        if (typeof key !== "string" && typeof key !== "number") {
          problems.push({
            file,
            ...(keyPos ?? { line: 1, col: 1 }),
            path,
            message: "keys must be plain strings",
            kind: "type",
          });
          continue;
        }
        const p = childPath(path, String(key));
        const valueNode = pair.value as Node | null;
        const valuePos = valueNode?.range ? at(valueNode.range[0]) : keyPos;
        if (valuePos) positions.set(p, { value: valuePos, key: keyPos });
        out[String(key)] = walk(pair.value, p);
      }
      return out;
    }
    if (isSeq(n)) return n.items.map((item, i) => walk(item, childPath(path, i)));
    return null;
  };
  const value = walk(doc.contents, "");
  return { value, positions, interpolated, problems };
}

/** Offset in the file of the bad `${…}`: searched in the node's source, as quotes shift it. */
function envOffset(
  text: string,
  range: readonly number[] | null | undefined,
  value: string,
  index: number,
): number {
  if (!range) return 0;
  const close = value.indexOf("}", index);
  const ref = value.slice(index, close < 0 ? undefined : close + 1);
  const found = text.slice(range[0], range[1]).indexOf(ref);
  return range[0] + (found < 0 ? 0 : found);
}
