-- 008_simulator: the embedded simulator's timeline, so it replays like a topic.
-- The simulator stores no messages: the message at (partition, offset) is
-- derived from the seed, the offset and the segment of the timeline holding
-- it (src/simulator/timeline.ts, message_at.ts). A segment is never changed
-- once any of its offsets may have been issued; new parameters or a skipped
-- backlog start a new segment at the first offset not issued yet.

-- One stretch of a partition's timeline: offset o >= from_offset (up to the
-- next segment's) is issued at origin_ms + (o - from_offset) * 1000 / rate,
-- with the message parameters in params (seed, devices, shares, ...).
CREATE TABLE IF NOT EXISTS simulator_timeline (
  topic TEXT NOT NULL,
  "partition" INT NOT NULL,
  from_offset BIGINT NOT NULL CHECK (from_offset >= 0),
  origin_ms BIGINT NOT NULL,
  rate DOUBLE PRECISION NOT NULL CHECK (rate >= 0),
  params JSONB NOT NULL,
  recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, "partition", from_offset)
);

-- Per partition: every offset the simulator has delivered is below issued_end
-- (raised before delivering past it), so a new segment never re-shapes an
-- offset the speed layer or the lake may hold.
CREATE TABLE IF NOT EXISTS simulator_issued (
  topic TEXT NOT NULL,
  "partition" INT NOT NULL,
  issued_end BIGINT NOT NULL CHECK (issued_end >= 0),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, "partition")
);
