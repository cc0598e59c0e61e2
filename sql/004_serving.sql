-- 004_serving: the serving views, one continuous series per metric from the
-- two layers. A CONTRACT: the API and Superset query these names and columns.
--
-- serving_hourly(timestamp, id, value, type, source): per metric and hour, the
--   batch layer's exact value where the hour is in batch_hours (source
--   'batch'); otherwise the speed layer's 5-minute windows folded into the
--   hour (source 'speed'). A speed metric that the batch layer does not
--   compute (e.g. user_bytes_total) stays 'speed' in batched hours too; which
--   types the batch layer computes is in metric_catalog (layer 'batch'). The
--   fold follows the speed metric's aggregation in speed_metrics (002): SUM
--   for sum and count (also the default for an unlisted type), MIN / MAX for
--   min and max, and MAX for count_distinct (a lower bound: distinct members
--   of windows cannot be added up).
-- serving_5m(timestamp, id, value, type, source): the speed layer's windows.
-- batch_reconciliation is created by 003_batch.sql.

CREATE OR REPLACE VIEW serving_5m AS
  SELECT b.timestamp, b.id, b.value, b.type, 'speed'::text AS source
  FROM bytes b;

CREATE OR REPLACE VIEW serving_hourly AS
  SELECT h.timestamp, h.id, h.value, h.type, 'batch'::text AS source
  FROM bytes_hourly h
  WHERE EXISTS (SELECT 1 FROM batch_hours bh WHERE bh.hour = h.timestamp)
  UNION ALL
  SELECT s.timestamp, s.id, s.value, s.type, 'speed'::text AS source
  FROM (
    SELECT date_trunc('hour', b.timestamp) AS timestamp, b.id, b.type,
      (CASE max(c.aggregation)
        WHEN 'min' THEN min(b.value)
        WHEN 'max' THEN max(b.value)
        WHEN 'count_distinct' THEN max(b.value)
        ELSE sum(b.value)
      END)::bigint AS value
    FROM bytes b
    LEFT JOIN speed_metrics c ON c.type = b.type
    GROUP BY date_trunc('hour', b.timestamp), b.id, b.type
  ) s
  WHERE NOT EXISTS (
    SELECT 1 FROM batch_hours bh
    JOIN metric_catalog bc ON bc.layer = 'batch' AND bc.type = s.type
    WHERE bh.hour = s.timestamp
  );
