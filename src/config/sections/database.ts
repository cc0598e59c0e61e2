/**
 * `database`: the serving PostgreSQL, or the embedded PGlite. The database is
 * opened once, at start, so none of its keys reloads live.
 */

import { resolve } from "node:path";
import type { PipelineConfig } from "../types.gen.ts";
import { type Frozen, type ObjectSpec, restart, type Section } from "../spec_types.ts";
import { HOST } from "./_fields.ts";

const DATABASE = "the database is opened once, at start";

const SPEC: ObjectSpec = {
  type: "object",
  typeName: "DatabaseConfig",
  description: "The serving PostgreSQL.",
  fields: {
    url: {
      type: "string",
      reload: restart(DATABASE),
      secret: true,
      description: "postgres:// URL (e.g. Cloud SQL); unset or empty = embedded PGlite.",
      optional: true,
      example: "postgres://app:secret@10.0.0.7:5432/antenna",
      pattern: /^postgres(ql)?:\/\/\S+$/,
      patternText: "a postgres:// URL",
    },
    embedded: {
      type: "object",
      description: "The embedded PGlite used when `url` is unset.",
      fields: {
        dir: {
          type: "string",
          reload: restart(DATABASE),
          description: "Folder PGlite persists to (relative to this file's folder).",
          default: "./data/pglite",
        },
        host: { ...HOST, reload: restart(DATABASE) },
        port: {
          type: "int",
          reload: restart(DATABASE),
          description: "Port serving PGlite over the wire protocol (0 = off).",
          default: 55432,
          min: 0,
          max: 65535,
        },
      },
    },
    allow_simulator_writes: {
      type: "bool",
      reload: restart("whether simulated events may reach the database is checked once, at start"),
      description: "Allow simulated events into a configured (real) database.",
      default: false,
    },
    max_connections: {
      type: "int",
      reload: restart(DATABASE),
      description: "Connection pool size.",
      default: 10,
      min: 1,
      max: 1000,
    },
  },
};

function compile(c: PipelineConfig["database"], { baseDir }: { baseDir: string }) {
  return {
    /** postgres:// URL; undefined = embedded PGlite. */
    ...(c.url !== undefined ? { url: c.url } : {}),
    embedded: {
      /** Folder PGlite persists to. */
      dir: resolve(baseDir, c.embedded.dir),
      host: c.embedded.host,
      /** Port serving PGlite over the wire protocol (0 = off). */
      port: c.embedded.port,
    },
    /** Refuse simulated events into a real database unless true. */
    allowSimulatorWrites: c.allow_simulator_writes,
    maxConnections: c.max_connections,
  };
}

export type DatabasePlan = Frozen<ReturnType<typeof compile>>;

export const database: Section<PipelineConfig["database"], ReturnType<typeof compile>> = {
  spec: SPEC,
  rules: [],
  compile,
};
