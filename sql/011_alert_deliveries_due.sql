-- The outbox claim (src/alerts/store.ts, claimDeliveries) takes due
-- deliveries in (next_attempt_at, alert_id) order. A fold's alerts share one
-- next_attempt_at (the fold's now()), so with an index on next_attempt_at
-- alone every claim of 500 read and sorted all of them: delivering the
-- 30,000 alerts of a catch-up took half a minute of PostgreSQL. With alert_id
-- in the index a claim reads the 500 it takes.
CREATE INDEX IF NOT EXISTS quota_alert_deliveries_due_order_idx
  ON quota_alert_deliveries (output, next_attempt_at, alert_id) WHERE state = 'pending';
DROP INDEX IF EXISTS quota_alert_deliveries_due_idx;
