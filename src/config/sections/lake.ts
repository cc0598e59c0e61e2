/**
 * `lake`: the raw Parquet lake, Hive-partitioned by event hour (UTC), local or
 * on GCS. The lake is opened once, at start; how files are cut and compacted
 * the speed layer applies live.
 */

import { isAbsolute, resolve } from "node:path";
import type { PipelineConfig } from "../types.gen.ts";
import { type Frozen, live, type ObjectSpec, restart, type Section } from "../spec_types.ts";

const LAKE = "the lake is opened once, at start";

const SPEC: ObjectSpec = {
  type: "object",
  typeName: "LakeConfig",
  description: "The raw Parquet lake, Hive-partitioned by event hour (UTC).",
  fields: {
    uri: {
      type: "string",
      reload: restart(LAKE),
      description:
        "`file://path` (relative paths resolve against this file's folder) or `gs://bucket/prefix`.",
      default: "file://./data/lake",
      example: "gs://my-bucket/antenna-lake",
      pattern: /^(file:\/\/.+|gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](\/.*)?)$/,
      patternText: "file://<path> or gs://<bucket>[/<prefix>]",
    },
    gcs_endpoint: {
      type: "string",
      reload: restart(LAKE),
      secret: true,
      description: "GCS API endpoint override (an emulator); unset = Google.",
      optional: true,
      example: "http://127.0.0.1:4443",
      pattern: /^https?:\/\/\S+$/,
      patternText: "an http(s):// URL",
    },
    gcs_project_id: {
      type: "string",
      reload: restart(LAKE),
      description: "GCS project id.",
      optional: true,
    },
    roll: {
      type: "object",
      description: "When an open Parquet file is closed; whichever comes first.",
      fields: {
        max_rows: {
          type: "int",
          reload: live("speed"),
          description:
            "Rows per file. The open file of each Kafka partition is held in memory until it is cut (about 150 bytes a row), so this bounds the writer's memory when catching up; complete hours are compacted anyway.",
          default: 50_000,
          min: 1,
        },
        max_bytes: {
          type: "size",
          reload: live("speed"),
          description: "Approximate bytes per file.",
          default: "64MiB",
          min: 1024,
        },
        max_age: {
          type: "duration",
          reload: live("speed"),
          description: "Age of the oldest row in an open file.",
          default: "1m",
          min: 100,
        },
      },
    },
    compaction: {
      type: "object",
      description: "Merging of a complete hour's small files into one per Kafka partition.",
      fields: {
        enabled: {
          type: "bool",
          reload: live("speed"),
          description: "Compact complete hours.",
          default: true,
        },
        after: {
          type: "duration",
          reload: live("speed"),
          description: "An hour is compacted once the watermark is this far past its end.",
          default: "5m",
        },
        copy_min_rows: {
          type: "int",
          reload: live("speed"),
          description:
            "Files averaging at least this many rows are joined by copying their row groups (fast, no re-encoding, but each keeps its own dictionaries: a bigger file); smaller ones are merged into 1,000,000-row groups.",
          default: 20_000,
          min: 0,
        },
      },
    },
  },
};

/** Where a lake URI points: a local folder, or a bucket and a key prefix. */
function location(uri: string, baseDir: string) {
  if (uri.startsWith("gs://")) {
    const rest = uri.slice("gs://".length);
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    const prefix = slash < 0 ? "" : rest.slice(slash + 1).replace(/^\/+|\/+$/g, "");
    const kind: "file" | "gcs" = "gcs";
    return { uri: `gs://${bucket}${prefix ? "/" + prefix : ""}`, kind, root: bucket, prefix };
  }
  const path = decodeURIComponent(uri.slice("file://".length));
  const root = isAbsolute(path) ? resolve(path) : resolve(baseDir, path);
  const kind: "file" | "gcs" = "file";
  return { uri: `file://${root}`, kind, root, prefix: "" };
}

function compile(c: PipelineConfig["lake"], { baseDir }: { baseDir: string }) {
  const { uri, kind, root, prefix } = location(c.uri, baseDir);
  return {
    /** `file:///abs/path` or `gs://bucket/prefix`. */
    uri,
    kind,
    /** Absolute folder (file) or bucket name (gcs). */
    root,
    /** Key prefix inside the bucket ("" for file). */
    prefix,
    /** GCS API endpoint override (emulator); undefined = Google. */
    ...(c.gcs_endpoint !== undefined ? { gcsEndpoint: c.gcs_endpoint } : {}),
    ...(c.gcs_project_id !== undefined ? { gcsProjectId: c.gcs_project_id } : {}),
    roll: { maxRows: c.roll.max_rows, maxBytes: c.roll.max_bytes, maxAgeMs: c.roll.max_age },
    compaction: {
      enabled: c.compaction.enabled,
      /** An hour is compacted once the watermark is this far past its end. */
      afterMs: c.compaction.after,
      /** Inputs averaging at least this many rows are copied row group by row group. */
      copyMinRows: c.compaction.copy_min_rows,
    },
  };
}

export type LakePlan = Frozen<ReturnType<typeof compile>>;

export const lake: Section<PipelineConfig["lake"], ReturnType<typeof compile>> = {
  spec: SPEC,
  rules: [],
  compile,
};
