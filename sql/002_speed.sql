-- 002_speed: the speed layer's state and its `bytes` view.
-- The layer never writes final window rows: each Kafka partition upserts its
-- own partial rows (deltas merged with the metric's combine rule) in the same
-- transaction as that partition's next offset, so a replay never counts twice
-- and instances sharing a consumer group add up to the totals of one.
-- `bytes` keeps the product's shape (timestamp, id, value, type) as a view
-- that combines the partials across partitions, showing a partition's rows
-- only once its watermark has passed the window's end (the window is written).

-- How each speed metric combines partials; upserted from the plan at start.
CREATE TABLE IF NOT EXISTS speed_metrics (
  type TEXT PRIMARY KEY,
  aggregation TEXT NOT NULL
    CHECK (aggregation IN ('sum', 'count', 'min', 'max', 'count_distinct')),
  window_ms BIGINT NOT NULL CHECK (window_ms > 0)
);

-- Partial value of one (metric, window, key) from one Kafka partition.
-- Key order (type, id, timestamp): the serving layer's hot query is one
-- metric's series of one id over a day, a single range scan of this key.
CREATE TABLE IF NOT EXISTS speed_partials (
  type TEXT NOT NULL,
  "timestamp" TIMESTAMP NOT NULL,
  id TEXT NOT NULL,
  "partition" INT NOT NULL,
  value BIGINT NOT NULL,
  window_end TIMESTAMP NOT NULL,
  PRIMARY KEY (type, id, "timestamp", "partition")
);
-- Every id of a metric over a time range (dashboards, top-N, reconciliation).
CREATE INDEX IF NOT EXISTS speed_partials_type_time_idx ON speed_partials (type, "timestamp");

-- Members of count_distinct metrics: a set, so replays and partitions merge.
CREATE TABLE IF NOT EXISTS speed_distinct (
  type TEXT NOT NULL,
  "timestamp" TIMESTAMP NOT NULL,
  id TEXT NOT NULL,
  "partition" INT NOT NULL,
  member TEXT NOT NULL,
  window_end TIMESTAMP NOT NULL,
  PRIMARY KEY (type, id, "timestamp", "partition", member)
);

-- Per partition: everything below next_offset is applied to the partials;
-- clock_ms restores the partition's event-time clock after a restart;
-- every valid event below lake_offset was durable in the lake at that flush,
-- so a restart resumes from min(next_offset, lake_offset).
CREATE TABLE IF NOT EXISTS speed_progress (
  topic TEXT NOT NULL,
  "partition" INT NOT NULL,
  next_offset BIGINT NOT NULL,
  lake_offset BIGINT NOT NULL,
  clock_ms BIGINT,
  watermark TIMESTAMP,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, "partition")
);

-- Messages that failed validation, with their original bytes.
CREATE TABLE IF NOT EXISTS dead_letters (
  topic TEXT NOT NULL,
  "partition" INT NOT NULL,
  "offset" BIGINT NOT NULL,
  reason TEXT NOT NULL,
  detail TEXT NOT NULL,
  payload BYTEA,
  at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, "partition", "offset")
);
CREATE INDEX IF NOT EXISTS dead_letters_reason_at_idx ON dead_letters (reason, at);

-- Lake hours compacted per partition (so a restart does not redo them).
CREATE TABLE IF NOT EXISTS speed_compactions (
  hour TIMESTAMP NOT NULL,
  "partition" INT NOT NULL,
  compacted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (hour, "partition")
);

-- One watermark per partition even if progress rows of several topics exist.
CREATE OR REPLACE VIEW speed_watermarks AS
SELECT "partition", max(watermark) AS watermark
FROM speed_progress
GROUP BY "partition";

CREATE OR REPLACE VIEW bytes AS
SELECT p."timestamp", p.id,
  (CASE m.aggregation
    WHEN 'min' THEN min(p.value)
    WHEN 'max' THEN max(p.value)
    ELSE sum(p.value)
  END)::BIGINT AS value,
  p.type
FROM speed_partials p
JOIN speed_metrics m ON m.type = p.type AND m.aggregation <> 'count_distinct'
JOIN speed_watermarks w ON w."partition" = p."partition" AND p.window_end <= w.watermark
GROUP BY p.type, p.id, p."timestamp", m.aggregation
UNION ALL
SELECT d."timestamp", d.id, count(DISTINCT d.member)::BIGINT AS value, d.type
FROM speed_distinct d
JOIN speed_watermarks w ON w."partition" = d."partition" AND d.window_end <= w.watermark
GROUP BY d.type, d.id, d."timestamp";
