-- 009_quota_alerts: real-time quota alerts (src/alerts; README "Quota alerts").
-- The rules are src/core/quota_alerts.ts.

-- The running usage of each email in each event-time hour, summed over every
-- partition and instance by the fold (src/alerts/fold.ts), which applies the
-- shares below in transactions of its own: it upserts every touched (hour,
-- email) in that order (INSERT ... ON CONFLICT DO UPDATE ... RETURNING), so
-- a concurrent fold (another instance) waits on the row and then adds to the
-- committed total; each fold sees the exact usage before the shares it
-- applies, finds the event that reached a threshold, inserts the alert and
-- deletes the shares, all in one transaction. quota is the email's quota as
-- of the latest fold.
CREATE TABLE IF NOT EXISTS quota_usage (
  hour TIMESTAMP NOT NULL,
  email TEXT NOT NULL,
  usage BIGINT NOT NULL,
  quota BIGINT NOT NULL,
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (hour, email)
) WITH (fillfactor = 80); -- room on each page for HOT updates (no index changes)

-- What one partition's flush added to each user of an hour: one row of
-- arrays per partition, flush and hour, written in the flush's transaction
-- with its offset (so a replay never adds an event twice and no event is
-- lost), and deleted by the fold that applies it (DELETE ... RETURNING claims
-- it: two folds never apply one share). Users are named by their slot in the
-- holder's process (quota_alert_slots), 4 bytes instead of an email. holder
-- is the process that wrote it; it folds it from its memory, which has every
-- event (the exact crossing event). A share whose process is gone is folded
-- by another from these arrays: the crossing event is then the share's last
-- event (last_offset, last_time). The arrays are stored out of line
-- uncompressed: compressing them cost the flush more than the bytes saved.
CREATE TABLE IF NOT EXISTS quota_usage_shares (
  id BIGSERIAL PRIMARY KEY,
  topic TEXT NOT NULL,
  "partition" INT NOT NULL,
  holder TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  hour TIMESTAMP NOT NULL,
  slots INT[] NOT NULL,
  usages BIGINT[] NOT NULL,
  last_offset BIGINT NOT NULL,
  last_time TIMESTAMP NOT NULL
);
ALTER TABLE quota_usage_shares ALTER COLUMN slots SET STORAGE EXTERNAL;
ALTER TABLE quota_usage_shares ALTER COLUMN usages SET STORAGE EXTERNAL;

-- The email of each slot a process's shares use, written in the flush that
-- first uses it (once per user and process); deleted with the process's
-- last share once it is gone.
CREATE TABLE IF NOT EXISTS quota_alert_slots (
  holder TEXT NOT NULL,
  slot INT NOT NULL,
  email TEXT NOT NULL,
  PRIMARY KEY (holder, slot)
);

-- Each partition's event-time clock (highest event time seen) as the alert
-- detector last stored it, in the flush transaction: which events are too
-- late to count toward their hour is the same after a restart.
CREATE TABLE IF NOT EXISTS quota_alert_clocks (
  topic TEXT NOT NULL,
  "partition" INT NOT NULL,
  clock_ms BIGINT NOT NULL,
  PRIMARY KEY (topic, "partition")
);

-- One alert per (hour, email, threshold), whichever layer raised it first:
-- the speed layer in a flush transaction (with the crossing event: its
-- partition, offset, event time, and when it was consumed), or the batch
-- layer when it finds a threshold reached that has no alert (source batch,
-- no crossing event). The batch layer's verdict on each alert of an hour it
-- ran: confirmed, unconfirmed (the exact usage does not reach it) or late.
-- raised_by: the process (host:pid) that raised it; the API's stream polls
-- for the alerts of other processes only (its own reach it in process).
CREATE TABLE IF NOT EXISTS quota_alerts (
  id BIGSERIAL PRIMARY KEY,
  hour TIMESTAMP NOT NULL,
  email TEXT NOT NULL,
  threshold NUMERIC(8, 4) NOT NULL,
  quota BIGINT NOT NULL,
  usage BIGINT NOT NULL,
  crossed_at TIMESTAMP,
  detected_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  source TEXT NOT NULL CHECK (source IN ('speed', 'batch')),
  topic TEXT,
  "partition" INT,
  "offset" BIGINT,
  consumed_at TIMESTAMPTZ,
  raised_by TEXT,
  batch_status TEXT CHECK (batch_status IN ('confirmed', 'unconfirmed', 'late')),
  batch_usage BIGINT,
  batch_run_id BIGINT,
  UNIQUE (hour, email, threshold)
);
-- The stream's catch-up and "alerts of the last minutes" read by detection time.
CREATE INDEX IF NOT EXISTS quota_alerts_detected_idx ON quota_alerts (detected_at);

-- The outbox: one row per alert and output (kafka, webhook), inserted with
-- the alert. Dispatchers claim due pending rows (FOR UPDATE SKIP LOCKED, with
-- next_attempt_at pushed ahead as a lease), deliver, and record the outcome;
-- a crash in between leaves the row due again after its lease, or at once
-- when the claimer (claimed_by, host:pid, set while a claim is in flight) is
-- a process of this host that is gone. in_doubt: an attempt may have reached
-- the output without its outcome being recorded (the Kafka output then looks
-- for it on the topic before sending again).
CREATE TABLE IF NOT EXISTS quota_alert_deliveries (
  alert_id BIGINT NOT NULL REFERENCES quota_alerts (id) ON DELETE CASCADE,
  output TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
  attempts INT NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  claimed_at TIMESTAMPTZ,
  claimed_by TEXT,
  in_doubt BOOLEAN NOT NULL DEFAULT false,
  delivered_at TIMESTAMPTZ,
  last_error TEXT,
  PRIMARY KEY (alert_id, output)
);
CREATE INDEX IF NOT EXISTS quota_alert_deliveries_due_idx
  ON quota_alert_deliveries (output, next_attempt_at) WHERE state = 'pending';

-- Per batched hour and threshold: how the batch layer's exact usage agrees
-- with the speed layer's alerts (beside batch_reconciliation; same run).
CREATE TABLE IF NOT EXISTS quota_alert_reconciliation (
  hour TIMESTAMP NOT NULL,
  threshold NUMERIC(8, 4) NOT NULL,
  speed_alerts INT NOT NULL,
  confirmed INT NOT NULL,
  unconfirmed INT NOT NULL,
  late INT NOT NULL,
  run_id BIGINT,
  computed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (hour, threshold)
);

-- Each user's usage per hour for dashboards: the batch layer's exact
-- email_bytes_total where the hour's batch is current (and the plan has that
-- batch metric), else the speed layer's running usage, so a new install shows
-- who uses most from the first minutes.
CREATE OR REPLACE VIEW user_usage_hourly AS
  SELECT h.timestamp, h.id AS email, h.value AS usage, 'batch'::text AS source
  FROM bytes_hourly h
  WHERE h.type = 'email_bytes_total'
    AND EXISTS (SELECT 1 FROM batch_hours_current bh WHERE bh.hour = h.timestamp)
  UNION ALL
  SELECT u.hour AS timestamp, u.email, u.usage, 'speed'::text AS source
  FROM quota_usage u
  WHERE NOT EXISTS (
    SELECT 1 FROM batch_hours_current bh
    JOIN metric_catalog c ON c.layer = 'batch' AND c.type = 'email_bytes_total'
    WHERE bh.hour = u.hour
  );

-- Users over quota per hour: user_quota_limit where the hour's batch is
-- current, else the speed layer's running usage above the quota (strictly,
-- as the batch rule) for hours not batched yet.
CREATE OR REPLACE VIEW users_over_quota AS
  SELECT l.timestamp, l.email, l.usage, l.quota, 'batch'::text AS source
  FROM user_quota_limit l
  WHERE EXISTS (SELECT 1 FROM batch_hours_current bh WHERE bh.hour = l.timestamp)
  UNION ALL
  SELECT u.hour AS timestamp, u.email, u.usage, u.quota, 'speed'::text AS source
  FROM quota_usage u
  WHERE u.usage > u.quota
    AND NOT EXISTS (SELECT 1 FROM batch_hours_current bh WHERE bh.hour = u.hour);

-- The newest event-time hour's running usage of each user, with its share of
-- the quota: who is heading for their quota right now.
CREATE OR REPLACE VIEW quota_usage_current AS
  SELECT u.hour, u.email, u.usage, u.quota,
    CASE WHEN u.quota > 0 THEN round(u.usage::numeric / u.quota, 4) END AS share,
    u.updated_at
  FROM quota_usage u
  WHERE u.hour = (SELECT max(hour) FROM quota_usage);
