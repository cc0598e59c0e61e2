/**
 * Field groups more than one section uses, declared once (like Redpanda
 * Connect's shared connection fields). Each user adds its own description and
 * reload marker.
 */

import type { FieldSpec, StringSpec } from "../spec_types.ts";

/** A Kafka topic name. */
export const TOPIC: Omit<StringSpec, "description"> = {
  type: "string",
  pattern: /^[A-Za-z0-9._-]{1,249}$/,
  patternText: "a Kafka topic name (letters, digits, '.', '_', '-')",
};

/** One Kafka broker address, the item of a broker list. */
export const BROKER: FieldSpec = {
  type: "string",
  description: "A broker address.",
  pattern: /^[^\s:,]+:\d{1,5}$/,
  patternText: "host:port",
};

/** An interface to listen on. */
export const HOST: Omit<StringSpec, "reload"> = {
  type: "string",
  description: "Interface to listen on.",
  default: "127.0.0.1",
};
