/**
 * `${VAR}` / `${VAR:-default}` substitution in scalar values, as in a shell:
 * the default applies when the variable is unset or empty, `$${` writes a
 * literal `${`. Secrets and addresses stay out of the file this way.
 */

export type Env = Readonly<Record<string, string | undefined>>;

export type InterpolationResult =
  | { readonly ok: true; readonly value: string; readonly replaced: boolean }
  | { readonly ok: false; readonly index: number; readonly message: string };

const REF_RE = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

/**
 * Substitutes every reference in `text`. On failure, `index` is the offset of
 * the offending `${` in `text`.
 *
 * @example interpolate("${HOST:-localhost}:9092", {}) // { ok: true, value: "localhost:9092", replaced: true }
 */
export function interpolate(text: string, env: Env): InterpolationResult {
  let out = "";
  let replaced = false;
  let i = 0;
  while (i < text.length) {
    if (text.startsWith("$${", i)) {
      out += "${";
      i += 3;
      replaced = true;
      continue;
    }
    if (!text.startsWith("${", i)) {
      out += text[i];
      i++;
      continue;
    }
    const end = text.indexOf("}", i + 2);
    if (end < 0) {
      return { ok: false, index: i, message: `unterminated "\${" (write "$\${" for a literal)` };
    }
    const ref = text.slice(i + 2, end);
    const m = REF_RE.exec(ref);
    if (!m) {
      return {
        ok: false,
        index: i,
        message: `bad variable reference "\${${ref}}" (expected \${NAME} or \${NAME:-default})`,
      };
    }
    const value = env[m[1]];
    if (value !== undefined && value !== "") out += value;
    else if (m[2] !== undefined) out += m[2];
    else if (value === "") out += "";
    else {
      return {
        ok: false,
        index: i,
        message: `environment variable ${m[1]} is not set (set it, or give a default: \${${
          m[1]
        }:-value})`,
      };
    }
    replaced = true;
    i = end + 1;
  }
  return { ok: true, value: out, replaced };
}
