-- 013_live_windows: the open 5-minute windows, served as they fill.
--
-- The speed layer already writes every window's partial rows at each flush
-- (flush_interval, 1 s by default), open or closed, in the same transaction as
-- the partition's next offset (002): what PostgreSQL holds of an open window
-- is exactly the events consumed up to the stored offsets, counted once. The
-- `bytes` view only hides a partition's rows until its watermark passes the
-- window's end. These views show them at once and say which are final.
--
-- bytes_live(timestamp, id, value, type, final): `bytes` plus the open
--   windows. `final` is true once every partition that wrote rows for the
--   window has its watermark past the window's end plus the allowed
--   lateness: from then on the speed layer drops the window's late events
--   (core/window.ts classify), so the value no longer changes. `bytes` shows a
--   partition's rows earlier, at the window's end, while late events may
--   still update them. (A partition whose clock has not reached the window
--   yet may still add rows, in both views.)
-- serving_5m_live(timestamp, id, value, type, source, final): serving_5m
--   with the open windows (source 'speed'); serving_5m keeps its contract
--   (closed windows only).
-- The lateness the speed layer applies, written with each metric at start
-- (src/speed/sink.ts upsertMetrics); 0 until then: final at the window's end.
ALTER TABLE speed_metrics ADD COLUMN IF NOT EXISTS allowed_lateness_ms BIGINT NOT NULL DEFAULT 0;

CREATE OR REPLACE VIEW bytes_live AS
SELECT p."timestamp", p.id,
  (CASE m.aggregation
    WHEN 'min' THEN min(p.value)
    WHEN 'max' THEN max(p.value)
    ELSE sum(p.value)
  END)::BIGINT AS value,
  p.type,
  bool_and(COALESCE(
    p.window_end + m.allowed_lateness_ms * INTERVAL '1 millisecond' <= w.watermark, false)) AS final
FROM speed_partials p
JOIN speed_metrics m ON m.type = p.type AND m.aggregation <> 'count_distinct'
LEFT JOIN speed_watermarks w ON w."partition" = p."partition"
GROUP BY p.type, p.id, p."timestamp", m.aggregation
UNION ALL
SELECT d."timestamp", d.id, count(DISTINCT d.member)::BIGINT AS value, d.type,
  bool_and(COALESCE(
    d.window_end + m.allowed_lateness_ms * INTERVAL '1 millisecond' <= w.watermark, false)) AS final
FROM speed_distinct d
JOIN speed_metrics m ON m.type = d.type
LEFT JOIN speed_watermarks w ON w."partition" = d."partition"
GROUP BY d.type, d.id, d."timestamp";

CREATE OR REPLACE VIEW serving_5m_live AS
  SELECT b.timestamp, b.id, b.value, b.type, 'speed'::text AS source, b.final
  FROM bytes_live b;
