/**
 * One simulated message from what was drawn for it: the event's JSON as
 * antennas publish it, pushed into the past when it is late, or a malformed
 * payload of the given kind. Shared by the sequential generator (`simulate`)
 * and the replayable one of the in-process source, which draw differently
 * but build alike.
 */
import type { DeadLetterReason, DeviceEvent } from "../core/event.ts";
import { malformedPayload } from "./malformed.ts";

/** One message to produce. */
export interface GeneratedItem {
  /** Message key: the device id. */
  readonly key: string;
  /** UTF-8 payload: the event JSON, or a malformed payload. */
  readonly value: Uint8Array;
  /** The event the value encodes; undefined when malformed. */
  readonly event?: DeviceEvent;
  /** The dead-letter reason this item is built to trigger; undefined when valid. */
  readonly malformed?: DeadLetterReason;
  /** A valid event whose timestamp was pushed into the past (out of order). */
  readonly late: boolean;
}

/** What was drawn for one message. */
export interface ItemDraw {
  readonly bytes: number;
  readonly app: string;
  /** `app` as a JSON string (computed once per app by the caller). */
  readonly appJson: string;
  readonly id: string;
  readonly antenna: string;
  /** When it is issued, epoch ms. */
  readonly issueMs: number;
  /** How late its event time is, ms (0: on time). */
  readonly latenessMs: number;
  /** Malformed instead: which kind, which variant of it. */
  readonly malformed?: { readonly kind: DeadLetterReason; readonly variant: number };
  /** The size limit the `oversized` kind exceeds. */
  readonly maxPayloadBytes: number;
}

const encoder = new TextEncoder();

/** Builds the message of a draw. */
export function simulatedItem(d: ItemDraw): GeneratedItem {
  if (d.malformed) {
    const base = {
      bytes: d.bytes,
      timestamp: Math.floor(d.issueMs / 1000),
      app: d.app,
      id: d.id,
      antenna_id: d.antenna,
    };
    return {
      key: d.id,
      value: malformedPayload(d.malformed.kind, base, d.malformed.variant, d.maxPayloadBytes),
      malformed: d.malformed.kind,
      late: false,
    };
  }
  const timestamp = Math.floor((d.issueMs - d.latenessMs) / 1000);
  const value = encoder.encode(
    `{"bytes":${d.bytes},"timestamp":${timestamp},"app":${d.appJson},"id":"${d.id}","antenna_id":"${d.antenna}"}`,
  );
  const event: DeviceEvent = {
    bytes: d.bytes,
    timestamp,
    app: d.app,
    id: d.id,
    antenna_id: d.antenna,
  };
  return { key: d.id, value, event, late: d.latenessMs > 0 };
}
