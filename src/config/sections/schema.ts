/**
 * `schema`: what makes an event valid; the rest goes to the dead-letter topic.
 * The speed layer applies a change live: each partition validates by the new
 * limits from its switch offset on (src/speed/plan_switch.ts).
 */

import type { SchemaPlan } from "../../core/vocabulary.ts";
import type { PipelineConfig } from "../types.gen.ts";
import { live, type ObjectSpec, type Section } from "../spec_types.ts";

const SPEC: ObjectSpec = {
  type: "object",
  typeName: "SchemaConfig",
  description: "What makes an event valid; the rest goes to the dead-letter topic.",
  fields: {
    max_payload_bytes: {
      type: "size",
      reload: live("speed"),
      description: "Larger messages are dead-lettered as `oversized`.",
      default: "64KiB",
      min: 64,
    },
    min_timestamp: {
      type: "timestamp",
      reload: live("speed"),
      description: "Earliest accepted event time.",
      default: "2000-01-01T00:00:00Z",
    },
    max_future: {
      type: "duration",
      reload: live("speed"),
      description: "How far past the wall clock an event time may be.",
      default: "1h",
    },
    max_app_length: {
      type: "int",
      reload: live("speed"),
      description: "Longest accepted `app` value.",
      default: 64,
      min: 1,
      max: 4096,
    },
  },
};

function compile(c: PipelineConfig["schema"]): SchemaPlan {
  return {
    maxPayloadBytes: c.max_payload_bytes,
    minTimestampMs: c.min_timestamp,
    maxFutureMs: c.max_future,
    maxAppLength: c.max_app_length,
  };
}

export const schema: Section<PipelineConfig["schema"], SchemaPlan> = {
  spec: SPEC,
  rules: [],
  compile,
};
