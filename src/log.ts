/**
 * Structured logs: one JSON object a line on stderr (`{"ts","level","msg",...}`),
 * or `LOG_FORMAT=pretty` for a human line. `LOG_LEVEL` = debug|info|warn|error.
 */

export type Level = "debug" | "info" | "warn" | "error";
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `fields` to every line (e.g. `{ component: "speed" }`). */
  child(fields: Record<string, unknown>): Logger;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

const threshold = ORDER[(env("LOG_LEVEL") as Level) ?? "info"] ?? ORDER.info;
const pretty = env("LOG_FORMAT") === "pretty";
const encoder = new TextEncoder();

function errorFields(value: unknown): unknown {
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

function write(
  level: Level,
  msg: string,
  base: Record<string, unknown>,
  fields?: Record<string, unknown>,
) {
  if (ORDER[level] < threshold) return;
  const all: Record<string, unknown> = { ...base, ...fields };
  for (const [k, v] of Object.entries(all)) all[k] = errorFields(v);
  const ts = new Date().toISOString();
  let line: string;
  if (pretty) {
    const rest = Object.entries(all).map(([k, v]) =>
      `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
    );
    line = `${ts} ${level.toUpperCase().padEnd(5)} ${msg}${
      rest.length ? " " + rest.join(" ") : ""
    }\n`;
  } else {
    line = JSON.stringify({ ts, level, msg, ...all }) + "\n";
  }
  Deno.stderr.writeSync(encoder.encode(line));
}

export function createLogger(base: Record<string, unknown> = {}): Logger {
  return {
    debug: (m, f) => write("debug", m, base, f),
    info: (m, f) => write("info", m, base, f),
    warn: (m, f) => write("warn", m, base, f),
    error: (m, f) => write("error", m, base, f),
    child: (f) => createLogger({ ...base, ...f }),
  };
}

export const log: Logger = createLogger();
