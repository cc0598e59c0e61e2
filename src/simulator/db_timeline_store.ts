/**
 * The timeline store in PostgreSQL or PGlite (`sql/008_simulator.sql`): the
 * segments in `simulator_timeline`, the issued ends in `simulator_issued`,
 * both per topic (the plan's `source.kafka.topic`, as in `speed_progress`),
 * so the simulator replays the same messages for the offsets the speed layer
 * recorded, whichever process asks.
 */
import type { Db } from "../db/db.ts";
import type { MessageParams } from "./message_at.ts";
import type { Segment } from "./timeline.ts";
import type { PartitionTimeline, TimelineStore } from "./timeline_store.ts";

const SEGMENTS_SQL = `SELECT "partition", from_offset, origin_ms, rate, params
  FROM simulator_timeline WHERE topic = $1 AND "partition" = ANY($2::int[])
  ORDER BY "partition", from_offset`;

const ISSUED_SQL = `SELECT "partition", issued_end
  FROM simulator_issued WHERE topic = $1 AND "partition" = ANY($2::int[])`;

const RECORD_SQL = `INSERT INTO simulator_timeline
    (topic, "partition", from_offset, origin_ms, rate, params)
  VALUES ($1, $2, $3, $4, $5, $6::jsonb)
  ON CONFLICT (topic, "partition", from_offset) DO UPDATE SET origin_ms = EXCLUDED.origin_ms,
    rate = EXCLUDED.rate, params = EXCLUDED.params, recorded_at = now()`;

const RESERVE_SQL = `INSERT INTO simulator_issued AS target (topic, "partition", issued_end)
  SELECT $1, u.p, u.e FROM unnest($2::int[], $3::bigint[]) AS u(p, e)
  ON CONFLICT (topic, "partition") DO UPDATE
    SET issued_end = EXCLUDED.issued_end, updated_at = now()
  WHERE target.issued_end < EXCLUDED.issued_end`;

/** Reads a recorded `params` value, refusing one this version cannot derive messages from. */
function readParams(raw: unknown, where: string): MessageParams {
  const v = (typeof raw === "string" ? JSON.parse(raw) : raw) as Record<string, unknown>;
  const num = (k: string) => {
    if (typeof v?.[k] !== "number") {
      throw new TypeError(`${where}: params.${k} is not a number (${JSON.stringify(v?.[k])})`);
    }
    return v[k] as number;
  };
  if (!Array.isArray(v?.apps) || !v.apps.every((a) => typeof a === "string")) {
    throw new TypeError(`${where}: params.apps is not a list of names`);
  }
  return {
    scheme: num("scheme"),
    seed: num("seed"),
    partitions: num("partitions"),
    devices: num("devices"),
    antennas: num("antennas"),
    apps: v.apps as string[],
    lateShare: num("lateShare"),
    malformedShare: num("malformedShare"),
    maxLatenessMs: num("maxLatenessMs"),
    maxPayloadBytes: num("maxPayloadBytes"),
  };
}

/**
 * A timeline store over `db` for `topic`. Run `migrate(db)` before.
 *
 * @example
 * const timeline = createDbTimelineStore(db, plan.source.kafka.topic);
 * const source = createSimulatorSource({ simulator: plan.source.simulator, timeline });
 */
export function createDbTimelineStore(db: Db, topic: string): TimelineStore {
  return {
    async load(partitions) {
      const [segs, issued] = await Promise.all([
        db.query<{
          partition: number;
          from_offset: number;
          origin_ms: number;
          rate: number;
          params: unknown;
        }>(SEGMENTS_SQL, [topic, [...partitions]]),
        db.query<{ partition: number; issued_end: number }>(ISSUED_SQL, [topic, [...partitions]]),
      ]);
      const out = new Map<number, PartitionTimeline & { segments: Segment[] }>(
        partitions.map((p) => [p, { segments: [], issuedEnd: 0 }]),
      );
      for (const r of segs) {
        const where =
          `simulator_timeline (topic ${topic}, partition ${r.partition}, from ${r.from_offset})`;
        out.get(Number(r.partition))?.segments.push({
          fromOffset: Number(r.from_offset),
          originMs: Number(r.origin_ms),
          rate: Number(r.rate),
          params: readParams(r.params, where),
        });
      }
      for (const r of issued) {
        const t = out.get(Number(r.partition));
        if (t) out.set(Number(r.partition), { ...t, issuedEnd: Number(r.issued_end) });
      }
      return out;
    },

    async record(segments) {
      if (segments.size === 0) return;
      await db.transaction(async (tx) => {
        for (const [p, s] of segments) {
          await tx.query(RECORD_SQL, [
            topic,
            p,
            s.fromOffset,
            s.originMs,
            s.rate,
            JSON.stringify(s.params),
          ]);
        }
      });
    },

    async reserve(ends) {
      if (ends.size === 0) return;
      await db.query(RESERVE_SQL, [topic, [...ends.keys()], [...ends.values()]]);
    },
  };
}
