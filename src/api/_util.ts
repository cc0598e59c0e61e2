/** Small helpers shared by the route files: row conversion, lookups, timeouts. */
import { UserError } from "../errors.ts";
import type { ApiContext, MetricInfo } from "./context.ts";

/** A TIMESTAMP / TIMESTAMPTZ column (a `Date`, UTC wall clock) as ISO-8601. */
export function isoOf(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (v instanceof Date) return v.toISOString();
  return new Date(String(v)).toISOString();
}

/** A BIGINT/NUMERIC column as a JSON number (bigint only beyond 2^53, rare). */
export function numOf(v: unknown): number {
  return Number(v);
}

/** The metric named in the path, or a 404 naming the known ones. */
export function requireMetric(ctx: ApiContext, name: string): MetricInfo {
  const m = ctx.metrics.get(name);
  if (!m) {
    throw new UserError(
      `metric: unknown metric ${JSON.stringify(name)} (known: ${
        [...ctx.metrics.keys()].join(", ")
      })`,
      { status: 404 },
    );
  }
  return m;
}

/** Rejects after `ms` with a message naming `what`; the timer never holds the process. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
