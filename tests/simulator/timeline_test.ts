/**
 * The replayable simulator's pure parts: messages derived from (seed,
 * partition, offset), the timeline's issue times and ends, and the decision
 * taken at start (first segment, new parameters, backlog cap). No I/O.
 */
import assert from "node:assert/strict";
import { validateMessage } from "../../src/core/validate.ts";
import { DEAD_LETTER_REASONS } from "../../src/core/event.ts";
import {
  createMessageAt,
  MESSAGE_SCHEME,
  type MessageParams,
} from "../../src/simulator/message_at.ts";
import { keyPartition } from "../../src/simulator/murmur2.ts";
import { DEFAULT_APPS, deviceId } from "../../src/simulator/ids.ts";
import { devicesByPartition } from "../../src/simulator/device_partitions.ts";
import {
  endOffsetAt,
  issueTimeMs,
  partitionRate,
  RATE_ZERO_NOMINAL,
  type Segment,
  startSegment,
} from "../../src/simulator/timeline.ts";

const PARAMS: MessageParams = {
  scheme: MESSAGE_SCHEME,
  seed: 42,
  partitions: 3,
  devices: 20,
  antennas: 5,
  apps: DEFAULT_APPS,
  lateShare: 0.05,
  malformedShare: 0.02,
  maxLatenessMs: 30_000,
  maxPayloadBytes: 65_536,
};
const SCHEMA = {
  maxPayloadBytes: 65_536,
  minTimestampMs: Date.UTC(2000, 0, 1),
  maxFutureMs: 3_600_000,
  maxAppLength: 64,
};
const T0 = Date.UTC(2026, 10, 28, 10);
const decoder = new TextDecoder();

const seg = (fromOffset: number, originMs: number, rate: number, params = PARAMS): Segment => ({
  fromOffset,
  originMs,
  rate,
  params,
});

Deno.test("createMessageAt() gives the same bytes for the same (seed, partition, offset), from a fresh derivation", () => {
  const a = createMessageAt(PARAMS);
  const b = createMessageAt({ ...PARAMS, apps: [...PARAMS.apps] });
  for (const [p, o] of [[0, 0], [1, 7], [2, 123_456], [0, 2 ** 40 + 3]]) {
    const x = a(p, o, T0 + o), y = b(p, o, T0 + o);
    assert.deepEqual(x.keyBytes, y.keyBytes);
    assert.deepEqual(x.value, y.value);
  }
  // Asked in another order: still the same, nothing depends on what came before.
  const forward = Array.from({ length: 50 }, (_, o) => decoder.decode(a(1, o, T0).value));
  const backward = Array.from({ length: 50 }, (_, i) => decoder.decode(b(1, 49 - i, T0).value))
    .reverse();
  assert.deepEqual(forward, backward);
  const other = createMessageAt({ ...PARAMS, seed: 43 });
  assert.notDeepEqual(
    forward,
    Array.from({ length: 50 }, (_, o) => decoder.decode(other(1, o, T0).value)),
  );
});

Deno.test("createMessageAt() keys partition p with devices that hash to p, all of them", () => {
  const at = createMessageAt(PARAMS);
  const lists = devicesByPartition(PARAMS.devices, PARAMS.partitions);
  assert.equal(lists.reduce((n, l) => n + l.length, 0), PARAMS.devices);
  for (let p = 0; p < 3; p++) {
    const seen = new Set<string>();
    for (let o = 0; o < 2_000; o++) {
      const m = at(p, o, T0);
      assert.equal(keyPartition(m.keyBytes, 3), p);
      seen.add(m.key);
    }
    assert.deepEqual([...seen].sort(), [...lists[p]].map(deviceId).sort());
  }
});

Deno.test("createMessageAt() derives a segment recorded under scheme 1 with its hex ids, scheme 2 with decimal ones", () => {
  const ids = (params: MessageParams) => {
    const at = createMessageAt(params);
    const seen = new Set<string>();
    for (let p = 0; p < 3; p++) {
      for (let o = 0; o < 2_000; o++) {
        const m = at(p, o, T0);
        assert.equal(keyPartition(m.keyBytes, 3), p, "keyed like Kafka under its own ids");
        seen.add(m.key);
      }
    }
    return seen;
  };
  const old = ids({ ...PARAMS, scheme: 1 });
  assert.ok(old.has("00000000-0000-0000-0000-00000000000a"), "the tenth device, in hex");
  assert.ok(old.has("00000000-0000-0000-0000-000000000014"), "the twentieth device, in hex");
  const now = ids({ ...PARAMS, scheme: 2 });
  assert.equal(MESSAGE_SCHEME, 2);
  assert.ok(now.has("00000000-0000-0000-0000-000000000010"), "the tenth device, in decimal");
  assert.ok(now.has("00000000-0000-0000-0000-000000000020"), "the twentieth device, in decimal");
  assert.ok(![...now].some((id) => /[a-f]/.test(id.slice(-12))));
  assert.throws(() => createMessageAt({ ...PARAMS, scheme: 3 }), RangeError);
});

Deno.test("createMessageAt() keeps the late and malformed shares, every malformed kind tripping its own reason", () => {
  const at = createMessageAt(PARAMS);
  const n = 30_000;
  let late = 0, malformed = 0;
  const kinds = new Set<string>();
  for (let o = 0; o < n; o++) {
    const issue = T0 + o * 10;
    const m = at(o % 3, o, issue);
    const v = validateMessage(m.value, SCHEMA, issue);
    if (m.malformed) {
      malformed++;
      kinds.add(m.malformed);
      assert.equal(v.ok, false);
      if (!v.ok) assert.equal(v.reason, m.malformed, decoder.decode(m.value).slice(0, 200));
      continue;
    }
    assert.ok(v.ok, decoder.decode(m.value));
    const tMs = m.event!.timestamp * 1000;
    if (m.late) {
      late++;
      assert.ok(tMs <= issue && tMs > issue - PARAMS.maxLatenessMs - 1000);
    } else {
      assert.equal(m.event!.timestamp, Math.floor(issue / 1000));
    }
  }
  assert.ok(Math.abs(late / n - 0.05) < 0.01, `late share ${late / n}`);
  assert.ok(Math.abs(malformed / n - 0.02) < 0.005, `malformed share ${malformed / n}`);
  assert.deepEqual([...kinds].sort(), [...DEAD_LETTER_REASONS].sort());
});

Deno.test("partitionRate() gives each partition its devices' share of the rate", () => {
  const rates = [0, 1, 2].map((p) => partitionRate(100, 20, 3, p));
  const counts = devicesByPartition(20, 3).map((l) => l.length);
  assert.deepEqual(rates, counts.map((c) => (100 * c) / 20));
  assert.equal(rates.reduce((a, b) => a + b), 100);
});

Deno.test("issueTimeMs() and endOffsetAt() follow the timeline: origin + (o - from) * 1000 / rate", () => {
  const segments = [seg(100, T0, 7), seg(300, T0 + 60_000, 250)];
  assert.equal(issueTimeMs(segments, 100), T0);
  assert.equal(issueTimeMs(segments, 107), T0 + 1_000);
  assert.equal(issueTimeMs(segments, 110), T0 + Math.floor(10_000 / 7));
  assert.equal(issueTimeMs(segments, 300), T0 + 60_000);
  assert.equal(issueTimeMs(segments, 550), T0 + 61_000);
  // Before the first segment: issued already (the records start there).
  assert.equal(endOffsetAt(segments, T0 - 5_000), 100);
  assert.equal(endOffsetAt(segments, T0), 101);
  // The first segment ends at 300 even though its rate alone would go on.
  assert.equal(endOffsetAt(segments, T0 + 59_999), 300);
  assert.equal(endOffsetAt(segments, T0 + 60_000), 301);
  assert.equal(endOffsetAt(segments, T0 + 61_000), 551);
  // Exactly: o < endOffsetAt(t) ⟺ issueTimeMs(o) <= t, for every t of a stretch.
  for (let t = T0 - 10; t < T0 + 62_000; t += 37) {
    const end = endOffsetAt(segments, t);
    assert.ok(issueTimeMs(segments, end - 1) <= t || end === 100, `t=${t}`);
    assert.ok(issueTimeMs(segments, end) > t, `t=${t}`);
  }
  // A fractional rate, far from the origin.
  const odd = [seg(0, T0, 33.333)];
  for (const t of [T0 + 3, T0 + 86_400_000 + 17, T0 + 7 * 86_400_000]) {
    const end = endOffsetAt(odd, t);
    assert.ok(issueTimeMs(odd, end - 1) <= t && issueTimeMs(odd, end) > t);
  }
  // A partition without devices issues nothing.
  assert.equal(endOffsetAt([seg(5, T0, 0)], T0 + 3_600_000), 5);
});

const START = {
  issuedEnd: 0,
  resumeOffset: 0,
  rate: 40,
  params: PARAMS,
  nowMs: T0,
  maxBacklogMs: 3_600_000,
  firstOriginBehindMs: 0,
};

Deno.test("startSegment() starts a partition's first segment at the resume offset, live", () => {
  assert.deepEqual(startSegment({ ...START, segments: [], resumeOffset: 1_000 }), {
    segment: seg(1_000, T0, 40),
    reason: "first",
  });
});

Deno.test("startSegment() keeps the timeline after a short downtime: the gap is a backlog", () => {
  const segments = [seg(0, T0 - 600_000, 40)];
  // Down for the last 5 minutes: 40/s × 300 s = 12 000 messages to catch up on.
  const d = startSegment({ ...START, segments, issuedEnd: 12_100, resumeOffset: 11_950 });
  assert.deepEqual(d, {});
  assert.equal(endOffsetAt(segments, T0), 40 * 600 + 1);
});

Deno.test("startSegment() caps the backlog: a new segment at the first unissued offset, max_backlog behind", () => {
  const segments = [seg(0, T0 - 3 * 3_600_000, 40)];
  // Issued up to 1 h of the timeline (144 000), then down for 2 h.
  const d = startSegment({
    ...START,
    segments,
    issuedEnd: 144_000,
    resumeOffset: 143_500,
    maxBacklogMs: 1_800_000,
  });
  assert.equal(d.reason, "backlog");
  assert.deepEqual(d.segment, seg(144_000, T0 - 1_800_000, 40));
  // 2 h down, 30 min kept: 1.5 h skipped, 40/s × 5 400 s messages never issued.
  assert.deepEqual(d.skipped, { events: 216_000, ms: 5_400_000 });
  const after = [...segments, d.segment!];
  // Offsets issued before keep their times; the backlog is 30 min plus the unconsumed rest.
  for (const o of [0, 143_500, 143_999]) {
    assert.equal(issueTimeMs(after, o), issueTimeMs(segments, o));
  }
  assert.equal(endOffsetAt(after, T0) - 143_500, 500 + 40 * 1_800 + 1);
});

Deno.test("startSegment() starts a new segment on new parameters without changing earlier offsets", () => {
  const segments = [seg(0, T0 - 600_000, 40)];
  const params = { ...PARAMS, lateShare: 0.2 };
  const d = startSegment({ ...START, segments, params, issuedEnd: 20_000, resumeOffset: 19_000 });
  assert.equal(d.reason, "changed");
  // It continues the old timeline's clock at the first offset not issued.
  assert.deepEqual(d.segment, seg(20_000, T0 - 600_000 + 500_000, 40, params));
  const before = createMessageAt(PARAMS);
  const after = [...segments, d.segment!];
  for (const o of [0, 19_000, 19_999]) {
    assert.equal(issueTimeMs(after, o), issueTimeMs(segments, o));
    assert.deepEqual(
      before(1, o, issueTimeMs(after, o)).value,
      before(1, o, issueTimeMs(segments, o)).value,
    );
  }
  // A new rate is a change too (a new segment from the same place).
  assert.equal(startSegment({ ...START, segments, rate: 80, issuedEnd: 20_000 }).reason, "changed");
});

Deno.test("startSegment() replaces a segment none of whose offsets was issued", () => {
  const segments = [seg(0, T0 - 600_000, 40), seg(20_000, T0 - 100_000, 40)];
  const params = { ...PARAMS, seed: 7 };
  const d = startSegment({ ...START, segments, params, issuedEnd: 20_000, resumeOffset: 20_000 });
  assert.deepEqual(d.segment, seg(20_000, T0 - 100_000, 40, params));
});

Deno.test("startSegment() with rate 0: a nominal rate, a first segment max_backlog behind, never ahead of the clock", () => {
  const rate = partitionRate(RATE_ZERO_NOMINAL, 20, 3, 0);
  const d = startSegment({ ...START, segments: [], rate, firstOriginBehindMs: 600_000 });
  assert.deepEqual(d.segment, seg(0, T0 - 600_000, rate));
  const segments = [d.segment!];
  // Ten minutes of history at the nominal rate is there to be read at once...
  const end = endOffsetAt(segments, T0);
  // (the 40 messages of the clock's own millisecond included)
  assert.equal(end, 600 * rate + rate / 1000);
  // ...and none of it stands ahead of the wall clock.
  assert.ok(issueTimeMs(segments, end - 1) <= T0 && issueTimeMs(segments, end) > T0);
});
