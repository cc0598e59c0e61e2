-- 010_backfill: live reloads of pipeline.yaml and the history of new metrics.
-- Owned by src/backfill. A speed metric that a reload (or a start) adds or
-- changes is live from a switch offset of each partition on; below it, its
-- windows are recomputed from the lake (backfill_partitions). A batch metric
-- added or changed gets the hours already batched run again (backfill_hours).
-- metric_definitions keeps what each layer last applied, so an edit made
-- while the pipeline was down is handled at start like a live reload.

-- The metric definitions a pipeline (named by its topic) last applied.
-- `hash` is NULL for metrics adopted from before this migration, whose
-- definition was never recorded: the next start records whatever it declares.
CREATE TABLE IF NOT EXISTS metric_definitions (
  topic TEXT NOT NULL,
  layer TEXT NOT NULL CHECK (layer IN ('speed', 'batch')),
  name TEXT NOT NULL,
  hash TEXT,
  definition TEXT,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, layer, name)
);

-- One speed metric's windows of one partition being recomputed from the lake:
-- the lake's events of the partition below stop_offset (the switch: the live
-- layer counts the metric from there) are replayed in offset order through
-- the metric's definition, for windows in [from_ms, until_ms). Progress is
-- written in the same transaction as the rows it covers: every event below
-- next_offset is in the rows, and clock_ms is the replay's event-time clock
-- there, so a resumed replay classifies the next event as the first would.
CREATE TABLE IF NOT EXISTS backfill_partitions (
  topic TEXT NOT NULL,
  metric TEXT NOT NULL,
  "partition" INT NOT NULL,
  hash TEXT NOT NULL,
  definition TEXT NOT NULL,
  reason TEXT NOT NULL CHECK (reason IN ('added', 'changed', 'manual')),
  stop_offset BIGINT NOT NULL,
  -- Windows starting at or after it (NULL: every hour of the lake).
  from_ms BIGINT,
  -- Windows starting before it (NULL: no bound).
  until_ms BIGINT,
  -- Events below it are written (NULL: not started).
  next_offset BIGINT,
  clock_ms BIGINT,
  -- First offset of the replay, for progress.
  start_offset BIGINT,
  events BIGINT NOT NULL DEFAULT 0,
  rows_written BIGINT NOT NULL DEFAULT 0,
  generation INT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at TIMESTAMPTZ,
  -- Who replays it (host:pid) and until when, renewed with each chunk.
  holder TEXT,
  lease_until TIMESTAMPTZ,
  PRIMARY KEY (topic, metric, "partition")
);
CREATE INDEX IF NOT EXISTS backfill_partitions_open_idx
  ON backfill_partitions (topic) WHERE finished_at IS NULL;

-- Hours the batch layer runs again for new or changed batch metrics.
CREATE TABLE IF NOT EXISTS backfill_hours (
  topic TEXT NOT NULL,
  hour TIMESTAMP NOT NULL,
  metrics TEXT NOT NULL,
  queued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  finished_at TIMESTAMPTZ,
  status TEXT,
  run_id BIGINT,
  PRIMARY KEY (topic, hour)
);
CREATE INDEX IF NOT EXISTS backfill_hours_open_idx
  ON backfill_hours (topic, hour) WHERE finished_at IS NULL;

-- Adopt the speed metrics of pipelines that ran before this migration (their
-- definitions unknown), so their first start after it recomputes nothing.
INSERT INTO metric_definitions (topic, layer, name)
SELECT DISTINCT p.topic, 'speed', m.type
FROM speed_metrics m CROSS JOIN speed_progress p
ON CONFLICT DO NOTHING;

INSERT INTO metric_definitions (topic, layer, name)
SELECT DISTINCT p.topic, 'batch', c.type
FROM metric_catalog c CROSS JOIN speed_progress p
WHERE c.layer = 'batch'
ON CONFLICT DO NOTHING;
