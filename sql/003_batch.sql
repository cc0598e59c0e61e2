-- 003_batch: the batch layer's run history, the hours it completed, the
-- per-hour reconciliation with the speed layer, and the metric catalog the
-- serving views read aggregations from. Owned by src/batch.

-- Every run of the hourly job, queued or finished. `lease_until` makes the
-- "one hour never runs twice at once" rule survive a crashed process: a
-- running row whose lease has passed is expired (marked failed) by the next
-- claimant. Works the same on PostgreSQL and PGlite (no advisory locks needed).
CREATE TABLE IF NOT EXISTS batch_runs (
  run_id BIGSERIAL PRIMARY KEY,
  hour TIMESTAMP NOT NULL,
  trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'manual', 'backfill', 'api')),
  status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'conflict')),
  queued_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  started_at TIMESTAMPTZ,
  finished_at TIMESTAMPTZ,
  lease_until TIMESTAMPTZ,
  rows_read BIGINT,
  files_read INT,
  rows_written BIGINT,
  unknown_devices BIGINT,
  unknown_rows BIGINT,
  breaches INT,
  -- Notes that are not errors, e.g. "no lake partition for this hour".
  note TEXT,
  error TEXT
);
-- The lock: at most one running run per hour, across processes.
CREATE UNIQUE INDEX IF NOT EXISTS batch_runs_one_running_idx
  ON batch_runs (hour) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS batch_runs_hour_idx ON batch_runs (hour, run_id);

-- Hours the batch layer completed: the serving views switch to batch values here.
CREATE TABLE IF NOT EXISTS batch_hours (
  hour TIMESTAMP PRIMARY KEY,
  last_run_id BIGINT NOT NULL,
  completed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Batch total vs the sum of the speed layer's windows, per hour and metric.
CREATE TABLE IF NOT EXISTS batch_reconciliation_t (
  hour TIMESTAMP NOT NULL,
  metric TEXT NOT NULL,
  speed_metric TEXT NOT NULL,
  batch_value BIGINT NOT NULL,
  speed_value BIGINT NOT NULL,
  difference BIGINT NOT NULL,
  computed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (hour, metric)
);

CREATE OR REPLACE VIEW batch_reconciliation AS
  SELECT hour, metric, speed_metric, batch_value, speed_value, difference
  FROM batch_reconciliation_t;

-- What each metric type means to the serving views: which layer writes it and
-- how its values combine (a speed metric's 5-minute windows fold into an hour
-- with SUM, MIN or MAX). Upserted from the plan by the batch runner.
CREATE TABLE IF NOT EXISTS metric_catalog (
  type TEXT NOT NULL,
  layer TEXT NOT NULL CHECK (layer IN ('speed', 'batch')),
  aggregation TEXT NOT NULL CHECK (aggregation IN ('sum', 'count', 'min', 'max', 'count_distinct')),
  PRIMARY KEY (type, layer)
);

-- One metric's series for one id: (type, id, timestamp) instead of the PK's
-- (type, timestamp, id), which would scan every id of the day.
CREATE INDEX IF NOT EXISTS bytes_hourly_type_id_ts_idx ON bytes_hourly (type, id, timestamp);
-- Users over quota in a range of hours, by email.
CREATE INDEX IF NOT EXISTS user_quota_limit_email_idx ON user_quota_limit (email, timestamp);
