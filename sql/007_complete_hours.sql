-- 007_complete_hours: what the batch layer needs to batch an hour only once
-- the lake holds all of it, and to batch it again when late data arrives.
-- The rule itself is src/core/completeness.ts; README "Complete hours".
--
-- Completeness, per partition, written by the speed layer in the same
-- transaction as its progress (src/speed/sink.ts):
-- - lake_clock_ms: the partition's event-time clock (highest event time) over
--   the events below lake_offset, i.e. over what the lake holds durably.
-- - caught_up_ms: the wall-clock time (epoch ms) at which the end of the
--   partition's log was read and later found durable in the lake: a quiet,
--   fully consumed partition is complete up to that time minus the lateness.
ALTER TABLE speed_progress ADD COLUMN IF NOT EXISTS lake_clock_ms BIGINT;
ALTER TABLE speed_progress ADD COLUMN IF NOT EXISTS caught_up_ms BIGINT;

-- How many partitions the source topic has, so a partition that no instance
-- ever flushed (no progress row) still holds hours back.
CREATE TABLE IF NOT EXISTS speed_topics (
  topic TEXT PRIMARY KEY,
  partitions INT NOT NULL CHECK (partitions > 0),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Changes to the lake's hours. Every speed-layer flush that makes lake rows
-- durable stamps the hours they fall in with a new number of lake_change_seq,
-- per partition (one row per hour and partition: concurrent partition
-- transactions never wait on each other's rows). A batch run draws a number
-- before it reads the lake (batch_hours.lake_seq): a change with a higher
-- number may be missing from what it read, so the hour is stale.
-- pending_since is the time of the first change the hour's batch has not
-- seen (re-runs wait batch.rerun_after from it, so a trickle of late events
-- causes one re-run, not one per event).
CREATE SEQUENCE IF NOT EXISTS lake_change_seq;
CREATE TABLE IF NOT EXISTS lake_hour_changes (
  hour TIMESTAMP NOT NULL,
  topic TEXT NOT NULL,
  "partition" INT NOT NULL,
  seq BIGINT NOT NULL,
  changed_at TIMESTAMPTZ NOT NULL,
  pending_since TIMESTAMPTZ,
  PRIMARY KEY (hour, topic, "partition")
);

-- Values of the events the speed layer dropped as too late, per metric, hour
-- and partition (additive metrics only): the part of a batch-speed difference
-- that is explained. Written in the flush transaction, so exactly once.
CREATE TABLE IF NOT EXISTS speed_late_dropped (
  type TEXT NOT NULL,
  hour TIMESTAMP NOT NULL,
  topic TEXT NOT NULL,
  "partition" INT NOT NULL,
  value BIGINT NOT NULL,
  events BIGINT NOT NULL,
  PRIMARY KEY (type, hour, topic, "partition")
);

-- The lake change number each batched hour was read at.
ALTER TABLE batch_hours ADD COLUMN IF NOT EXISTS lake_seq BIGINT;

-- Runs record whether their hour was complete when they started (NULL: the
-- speed layer does not run, so completeness is unknown) and re-runs of stale
-- hours have a trigger of their own.
ALTER TABLE batch_runs ADD COLUMN IF NOT EXISTS lake_complete BOOLEAN;
-- Which process runs it (host:pid): a run whose process is gone from this
-- host is taken over at once instead of after its lease (a restart after a
-- crash runs the hour again straight away).
ALTER TABLE batch_runs ADD COLUMN IF NOT EXISTS holder TEXT;
ALTER TABLE batch_runs DROP CONSTRAINT IF EXISTS batch_runs_trigger_check;
ALTER TABLE batch_runs ADD CONSTRAINT batch_runs_trigger_check
  CHECK (trigger IN ('schedule', 'rerun', 'manual', 'backfill', 'api'));

-- Hours whose batch is current: batched, and no lake change since.
CREATE OR REPLACE VIEW batch_hours_current AS
  SELECT bh.hour, bh.last_run_id, bh.completed_at
  FROM batch_hours bh
  WHERE NOT EXISTS (
    SELECT 1 FROM lake_hour_changes c
    WHERE c.hour = bh.hour AND c.seq > COALESCE(bh.lake_seq, 0)
  );

-- The reconciliation says how much of each difference is explained: what the
-- speed layer dropped as too late (the batch has it), what the batch dropped
-- of unknown devices under the `drop` policy (the speed layer has it); the
-- rest, unexplained = difference - late_dropped + unknown_dropped, means data
-- went missing.
ALTER TABLE batch_reconciliation_t ADD COLUMN IF NOT EXISTS late_dropped BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batch_reconciliation_t ADD COLUMN IF NOT EXISTS unknown_dropped BIGINT NOT NULL DEFAULT 0;
ALTER TABLE batch_reconciliation_t ADD COLUMN IF NOT EXISTS unexplained BIGINT NOT NULL DEFAULT 0;
CREATE OR REPLACE VIEW batch_reconciliation AS
  SELECT hour, metric, speed_metric, batch_value, speed_value, difference, late_dropped,
    unknown_dropped, unexplained
  FROM batch_reconciliation_t;

-- serving_hourly (see 004 for the contract): batch values only for hours
-- whose batch is current; a stale or unbatched hour is served from the speed
-- layer. The speed fold of a count_distinct metric counts the distinct
-- members of the hour's windows (speed_distinct), not the largest window.
CREATE OR REPLACE VIEW serving_hourly AS
  SELECT h.timestamp, h.id, h.value, h.type, 'batch'::text AS source
  FROM bytes_hourly h
  WHERE EXISTS (SELECT 1 FROM batch_hours_current bh WHERE bh.hour = h.timestamp)
  UNION ALL
  SELECT s.timestamp, s.id, s.value, s.type, 'speed'::text AS source
  FROM (
    SELECT date_trunc('hour', b.timestamp) AS timestamp, b.id, b.type,
      (CASE max(c.aggregation)
        WHEN 'min' THEN min(b.value)
        WHEN 'max' THEN max(b.value)
        ELSE sum(b.value)
      END)::bigint AS value
    FROM bytes b
    LEFT JOIN speed_metrics c ON c.type = b.type
    WHERE c.aggregation IS DISTINCT FROM 'count_distinct'
    GROUP BY date_trunc('hour', b.timestamp), b.id, b.type
    UNION ALL
    SELECT date_trunc('hour', d."timestamp") AS timestamp, d.id, d.type,
      count(DISTINCT d.member)::bigint AS value
    FROM speed_distinct d
    JOIN speed_watermarks w ON w."partition" = d."partition" AND d.window_end <= w.watermark
    GROUP BY date_trunc('hour', d."timestamp"), d.id, d.type
  ) s
  WHERE NOT EXISTS (
    SELECT 1 FROM batch_hours_current bh
    JOIN metric_catalog bc ON bc.layer = 'batch' AND bc.type = s.type
    WHERE bh.hour = s.timestamp
  );
