/**
 * Reading `dead_letters`, the table the speed layer's sink writes
 * (sink.ts): the messages that failed validation, counted by reason, for the
 * API. Its SQL lives with the folder that owns the table.
 */
import type { Queryable } from "../db/db.ts";

export interface DeadLetterReason {
  readonly reason: string;
  readonly count: number;
  /** Arrival of the first and last message with this reason, epoch ms. */
  readonly firstAt: number;
  readonly lastAt: number;
}

/** Dead letters that arrived in [`from`, `to`), by reason, most frequent first. */
export async function deadLetterCounts(
  db: Queryable,
  from: Date,
  to: Date,
): Promise<DeadLetterReason[]> {
  const rows = await db.query<
    { reason: string; count: unknown; first_at: Date; last_at: Date }
  >(
    `SELECT reason, count(*)::bigint AS count, min(at) AS first_at, max(at) AS last_at
     FROM dead_letters
     WHERE at >= $1::timestamptz AND at < $2::timestamptz
     GROUP BY reason ORDER BY count DESC, reason`,
    [from, to],
  );
  return rows.map((r) => ({
    reason: r.reason,
    count: Number(r.count),
    firstAt: r.first_at.getTime(),
    lastAt: r.last_at.getTime(),
  }));
}
