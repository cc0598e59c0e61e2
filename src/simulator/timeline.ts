/**
 * The replayable simulator's timeline, pure arithmetic: each partition is a
 * list of segments, each from an offset on, with an origin (the issue time of
 * its first offset), a rate and the message parameters. Offset o of a segment
 * is issued at origin + (o - from) * 1000 / rate, so the end of the partition
 * at wall time t (how many messages have been issued by then) follows from
 * the records alone: time the pipeline was down is a backlog, as on a topic.
 *
 * A segment is never changed once any of its offsets may have been issued; a
 * new one starts at the first offset not yet issued (`startSegment`) when the
 * parameters change or when the backlog would exceed the cap.
 */
import { devicesByPartition } from "./device_partitions.ts";
import { type MessageParams, sameMessageParams } from "./message_at.ts";

/** One stretch of a partition's timeline. */
export interface Segment {
  /** First offset of the segment; it runs to the next segment's first offset. */
  readonly fromOffset: number;
  /** Issue time of `fromOffset`, epoch ms (an integer). */
  readonly originMs: number;
  /** Messages per second of this partition; 0 = the partition issues nothing. */
  readonly rate: number;
  readonly params: MessageParams;
}

/**
 * Messages per second the timeline issues for `rate: 0` ("as fast as
 * possible"): far more than one process consumes, so delivery is bound by the
 * consumer, while event times still come from the timeline.
 */
export const RATE_ZERO_NOMINAL = 100_000;

/**
 * Rate of one partition: the devices keyed to it get their share of the
 * total, so every device sends at the same rate, as with a real topic.
 *
 * @example partitionRate(100, 20, 3, 0) // 30: 6 of the 20 devices hash to partition 0
 */
export function partitionRate(
  totalRate: number,
  devices: number,
  partitions: number,
  partition: number,
): number {
  return (totalRate * devicesByPartition(devices, partitions)[partition].length) / devices;
}

/** The segment holding `offset` (the first one for offsets before every segment). */
export function segmentOf(segments: readonly Segment[], offset: number): Segment {
  for (let k = segments.length - 1; k > 0; k--) {
    if (segments[k].fromOffset <= offset) return segments[k];
  }
  if (segments.length === 0) throw new RangeError("A timeline needs at least one segment");
  return segments[0];
}

/** Issue time of `offset` in segment `s`, epoch ms (floored to the millisecond). */
export function segmentTimeMs(s: Segment, offset: number): number {
  if (s.rate <= 0) return s.originMs;
  return Math.floor(s.originMs + ((offset - s.fromOffset) * 1000) / s.rate);
}

/** Issue time of `offset`, epoch ms. */
export function issueTimeMs(segments: readonly Segment[], offset: number): number {
  return segmentTimeMs(segmentOf(segments, offset), offset);
}

/** How many offsets of `s` (counted from its first) are issued at or before `t`. */
function issuedBy(s: Segment, t: number): number {
  if (s.rate <= 0 || t < s.originMs) return 0;
  // The closed form, then corrected so it agrees exactly with segmentTimeMs.
  let n = Math.ceil(((t + 1 - s.originMs) * s.rate) / 1000);
  while (n > 0 && segmentTimeMs(s, s.fromOffset + n - 1) > t) n--;
  while (segmentTimeMs(s, s.fromOffset + n) <= t) n++;
  return n;
}

/**
 * End of the partition at wall time `tMs`: the next offset not issued by then
 * (offsets before the first segment count as issued). An offset `o` is below
 * it exactly when `issueTimeMs(segments, o) <= tMs`.
 *
 * @example endOffsetAt([{ fromOffset: 0, originMs: 0, rate: 10, params }], 1_000) // 11
 */
export function endOffsetAt(segments: readonly Segment[], tMs: number): number {
  if (segments.length === 0) return 0;
  const t = Math.floor(tMs);
  for (let k = segments.length - 1; k >= 0; k--) {
    const s = segments[k];
    if (s.originMs > t && k > 0) continue;
    const next = segments[k + 1];
    const end = s.fromOffset + issuedBy(s, t);
    return next && end > next.fromOffset ? next.fromOffset : end;
  }
  return segments[0].fromOffset;
}

/** What the source knows about a partition when it starts. */
export interface StartInput {
  /** The recorded segments, in offset order. */
  readonly segments: readonly Segment[];
  /** Every offset below it may have been issued before: never given another meaning. */
  readonly issuedEnd: number;
  /** First offset the consumer asks for (its durable resume offset). */
  readonly resumeOffset: number;
  /** The partition's rate under the current plan. */
  readonly rate: number;
  readonly params: MessageParams;
  readonly nowMs: number;
  /** Longest backlog made up for; the older part of a longer gap is skipped. */
  readonly maxBacklogMs: number;
  /** How far before `nowMs` a partition's very first segment starts. */
  readonly firstOriginBehindMs: number;
}

/** What the source records when it starts. */
export interface StartDecision {
  /** A segment to record; it replaces a recorded one with the same `fromOffset`. */
  readonly segment?: Segment;
  /** Why: the partition's first segment, new parameters, or the backlog cap. */
  readonly reason?: "first" | "changed" | "backlog";
  /** What the cap skipped: messages the old timeline would have issued, and time. */
  readonly skipped?: { readonly events: number; readonly ms: number };
}

/**
 * Decides whether a partition's timeline needs a new segment at start. It
 * starts at the first offset that cannot have been issued (offsets below keep
 * their messages, so the speed layer's replays find them unchanged), its
 * origin continues the old timeline, moved forward so at most `maxBacklogMs`
 * of messages remain to be caught up on.
 *
 * @example
 * startSegment({ segments, issuedEnd: 5_000, resumeOffset: 4_800, rate: 40, params,
 *   nowMs: Date.now(), maxBacklogMs: 3_600_000, firstOriginBehindMs: 0 });
 */
export function startSegment(input: StartInput): StartDecision {
  const { segments, rate, params, nowMs, maxBacklogMs } = input;
  const first = Math.max(0, input.resumeOffset, input.issuedEnd);
  const last = segments.at(-1);
  if (!last) {
    return {
      segment: { fromOffset: first, originMs: nowMs - input.firstOriginBehindMs, rate, params },
      reason: "first",
    };
  }
  // At the last segment's first offset nothing of it was issued: it may be replaced.
  const from = Math.max(first, last.fromOffset);
  // Where the old timeline puts `from`: after a quick restart a little ahead of
  // nowMs (issued ends are reserved ahead), so a new segment waits for it
  // rather than issue times going backwards.
  const continues = last.rate > 0
    ? Math.ceil(last.originMs + ((from - last.fromOffset) * 1000) / last.rate)
    : Math.max(last.originMs, nowMs);
  const floor = nowMs - maxBacklogMs;
  const changed = last.rate !== rate || !sameMessageParams(last.params, params);
  if (!changed && continues >= floor) return {};
  const segment = { fromOffset: from, originMs: Math.max(continues, floor), rate, params };
  if (continues >= floor) return { segment, reason: "changed" };
  return {
    segment,
    reason: "backlog",
    skipped: {
      // Issued before `floor` by the old timeline; the new one issues from `floor` on.
      events: Math.max(0, last.fromOffset + issuedBy(last, floor - 1) - from),
      ms: floor - continues,
    },
  };
}
