-- 006_speed_partials_brin: speed_partials keeps one B-tree, its key, and
-- trades the two secondary B-trees for one BRIN index. Every speed-layer flush
-- writes tens of thousands of rows, and each B-tree costs a random index
-- insert per row: with the BRIN index the flushes write ~1.8x as many rows per
-- second as with the three B-trees (BENCHMARKS.md, "Serving API").
--
-- What served what, and what serves it now:
-- - One id's series over a range (the API's hot query) is a range of the key
--   (type, id, "timestamp"). The API selects the windows of its hourly series
--   by a raw "timestamp" range (src/api/_serving_sql.ts), so 005's index on
--   (type, id, date_trunc('hour', "timestamp")) is no longer needed.
-- - Every id of a metric over a time range (batch reconciliation, top-N,
--   dashboards on bytes / serving_5m / serving_hourly) used
--   (type, "timestamp"). Windows arrive roughly in time order, so the heap is
--   nearly sorted by "timestamp" and a BRIN index (a min and max per 128
--   pages) finds the pages of a time range at almost no cost per insert. Its
--   second column is the hour serving_hourly groups by: a time range on that
--   view is a range of date_trunc('hour', "timestamp"), which only an index
--   on that expression can serve.
-- Pages appended after the last summarized range are not indexed until
-- summarized (and are always read, so answers stay exact): autosummarize asks
-- autovacuum to summarize each range once it fills, and every VACUUM of the
-- table summarizes whatever is left.
DROP INDEX IF EXISTS speed_partials_type_time_idx;
DROP INDEX IF EXISTS speed_partials_type_id_hour_idx;
CREATE INDEX IF NOT EXISTS speed_partials_time_brin
  ON speed_partials USING brin ("timestamp", date_trunc('hour', "timestamp"))
  WITH (autosummarize = on);
