/**
 * The plan's generation, kept in `plan_generation` (one row per source
 * topic) so it survives restarts: a start on the plan last applied keeps its
 * generation, a start on another plan (edited while the pipeline was down)
 * is the next generation, and every applied reload records its own. This
 * module is the table's only owner.
 */
import type { Queryable } from "../db/db.ts";

/** A generation of the plan and when it was first applied. */
export interface StoredGeneration {
  readonly generation: number;
  /** Epoch ms. */
  readonly appliedAt: number;
}

/**
 * The generation of the plan `hash` at a start: the stored one when the hash
 * is the stored hash, else the stored one plus one (1 on the first start).
 * One statement, so two processes starting at once agree.
 *
 * @example
 * await startGeneration(db, "antenna-events", planHash(plan)) // { generation: 3, appliedAt: ... }
 */
export async function startGeneration(
  db: Queryable,
  topic: string,
  hash: string,
): Promise<StoredGeneration> {
  const [row] = await db.query<{ generation: number; applied_at: Date }>(
    `INSERT INTO plan_generation AS g (topic, generation, hash, applied_at)
     VALUES ($1, 1, $2, now())
     ON CONFLICT (topic) DO UPDATE SET
       generation = CASE WHEN g.hash = EXCLUDED.hash THEN g.generation ELSE g.generation + 1 END,
       applied_at = CASE WHEN g.hash = EXCLUDED.hash THEN g.applied_at ELSE now() END,
       hash = EXCLUDED.hash
     RETURNING generation, applied_at`,
    [topic, hash],
  );
  return { generation: Number(row.generation), appliedAt: new Date(row.applied_at).getTime() };
}

/** Records a generation applied by a reload (or given back after a failed one). */
export async function saveGeneration(
  db: Queryable,
  topic: string,
  generation: number,
  hash: string,
): Promise<void> {
  await db.query(
    `INSERT INTO plan_generation (topic, generation, hash, applied_at) VALUES ($1, $2, $3, now())
     ON CONFLICT (topic) DO UPDATE SET generation = EXCLUDED.generation, hash = EXCLUDED.hash,
       applied_at = CASE WHEN plan_generation.hash = EXCLUDED.hash
         THEN plan_generation.applied_at ELSE now() END`,
    [topic, generation, hash],
  );
}
