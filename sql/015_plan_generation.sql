-- The generation of the plan a pipeline runs (src/runtime/generation.ts):
-- one row per source topic (the pipeline's identity, as in speed_progress),
-- so a restart on the same plan keeps its generation and a changed plan gets
-- the next one, instead of starting again at 1.
CREATE TABLE IF NOT EXISTS plan_generation (
  topic       TEXT PRIMARY KEY,
  generation  INTEGER NOT NULL CHECK (generation >= 1),
  hash        TEXT NOT NULL,
  applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
