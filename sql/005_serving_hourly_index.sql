-- 005_serving_hourly_index: serving_hourly folds the speed windows by
-- date_trunc('hour', timestamp), so a time range on the view is a range on
-- that expression, which the (type, id, timestamp) key cannot serve: a one-day
-- hourly series of one id would read every window of that id. PostgreSQL
-- pushes the range through the `bytes` and `serving_hourly` views onto this
-- expression index (checked with EXPLAIN in tests/serving_views_test.ts).
CREATE INDEX IF NOT EXISTS speed_partials_type_id_hour_idx
  ON speed_partials (type, id, date_trunc('hour', "timestamp"));
