-- 001_base: the user metadata and the batch layer's outputs, with exactly the
-- columns (names, order) the product defines; keys and indexes are ours.
-- Every TIMESTAMP column holds UTC wall-clock time (sessions run in UTC);
-- a TIMESTAMP is the start of the window or hour it describes.
-- `bytes` belongs to the speed layer (002_speed.sql).

-- One row per device; quota = bytes the user may use per hour.
CREATE TABLE IF NOT EXISTS user_metadata (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL,
  quota BIGINT NOT NULL CHECK (quota >= 0)
);
-- The batch layer groups usage by email and the API looks users up by it.
CREATE INDEX IF NOT EXISTS user_metadata_email_idx ON user_metadata (email);

-- Exact hourly totals per metric (type) and key (id), from the batch layer.
CREATE TABLE IF NOT EXISTS bytes_hourly (
  timestamp TIMESTAMP NOT NULL,
  id TEXT NOT NULL,
  value BIGINT NOT NULL,
  type TEXT NOT NULL,
  PRIMARY KEY (type, timestamp, id)
);

-- Users whose usage in the hour starting at `timestamp` exceeded their quota.
CREATE TABLE IF NOT EXISTS user_quota_limit (
  email TEXT NOT NULL,
  usage BIGINT NOT NULL,
  quota BIGINT NOT NULL,
  timestamp TIMESTAMP NOT NULL,
  PRIMARY KEY (timestamp, email)
);
