-- speed_compactions (002) was never written nor read: lake compaction keeps
-- its crash-safety record as a marker object in the lake itself
-- (src/lake/compact.ts), beside the files it replaces.
DROP TABLE IF EXISTS speed_compactions;
