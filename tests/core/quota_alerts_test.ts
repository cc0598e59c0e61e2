/**
 * The quota alert rules (src/core/quota_alerts.ts), synchronously: when a
 * threshold is reached, which events count toward their hour, where in a
 * sequence each threshold is crossed, how the batch layer judges an hour.
 * Also the webhook signature and the delivery backoff.
 */
import assert from "node:assert/strict";
import {
  classify,
  countsTowardHour,
  crossings,
  HOUR_MS,
  hourCutoff,
  hourStart,
  reaches,
  reachFloor,
  reconcileHour,
} from "../../src/core/mod.ts";
import { alertJson, deliveryId, signBody, verifySignature } from "../../src/alerts/mod.ts";
import { backoffAfter } from "../../src/alerts/dispatcher.ts";

Deno.test("reaches() is usage >= threshold x quota, on integers, and never for no usage", () => {
  const cases: [number, number, number, boolean][] = [
    [4, 5, 0.8, true], // 0.8 x 5 is 4 exactly, not 4.000000000000001
    [3, 5, 0.8, false],
    [10, 10, 1, true], // exactly at the quota
    [9, 10, 1, false],
    [11, 10, 1, true],
    [0, 0, 1, false], // no bytes, no alert, even with a zero quota
    [1, 0, 1, true],
    [800_000, 1_000_000, 0.8, true],
    [799_999, 1_000_000, 0.8, false],
    [2 ** 52, 2 ** 52, 1, true], // beyond 2^53 / 10,000: BigInt
    [2 ** 52 - 1, 2 ** 52, 1, false],
  ];
  for (const [usage, quota, t, want] of cases) {
    assert.equal(reaches(usage, quota, t), want, `reaches(${usage}, ${quota}, ${t})`);
  }
});

Deno.test("reachFloor() never excludes a usage that reaches the threshold", () => {
  for (const quota of [1, 7, 1_000, 5_000_000, 123_457]) {
    for (const t of [0.0001, 0.5, 0.8, 0.9999, 1, 1.5]) {
      const floor = reachFloor(quota, t);
      for (let u = Math.max(1, floor - 3); u < floor; u++) {
        assert.equal(reaches(u, quota, t), false, `below the floor ${floor}: ${u} ${quota} ${t}`);
      }
      const first = Math.ceil(t * quota - 1e-9);
      assert.ok(floor <= Math.max(1, first), `floor ${floor} <= first reaching ${first}`);
    }
  }
});

Deno.test("countsTowardHour() keeps late events until the watermark passes the hour's end by the lateness", () => {
  const H = Date.UTC(2026, 10, 28, 10);
  const end = H + HOUR_MS;
  const L = 15_000;
  const cases: [string, number, number, boolean][] = [
    ["on time", H + 60_000, H + 30_000, true],
    ["out of order within the hour", H + 60_000, H + 50 * 60_000, true],
    ["the clock just past the end", end - 1_000, end + 1_000, true],
    ["watermark at the end + lateness - 1 ms", end - 1_000, end + 2 * L - 1, true],
    ["watermark at the end + lateness", end - 1_000, end + 2 * L, false],
    ["an hour late", H + 60_000, end + HOUR_MS, false],
    ["first event of a partition", H, -Infinity, true],
  ];
  for (const [what, t, clock, want] of cases) {
    assert.equal(countsTowardHour(t, clock, L), want, what);
  }
});

Deno.test("hourCutoff() is where classify() calls an event of the hour late_dropped", () => {
  const H = Date.UTC(2026, 10, 28, 10);
  for (const lateness of [0, 1_000, 15_000]) {
    for (const t of [H, H + 1, H + HOUR_MS / 2, H + HOUR_MS - 1]) {
      for (let clock = H; clock < H + HOUR_MS + 3 * lateness + 2; clock += 997) {
        const dropped =
          classify(hourStart(t), HOUR_MS, lateness, clock - lateness) === "late_dropped";
        assert.equal(
          clock >= hourCutoff(hourStart(t), lateness),
          dropped,
          `${t} ${clock} ${lateness}`,
        );
      }
    }
  }
});

Deno.test("crossings() finds the event that reaches each threshold, on top of the usage before", () => {
  const e = (bytes: number, quota = 100) => ({ bytes, quota });
  const none = () => false;
  assert.deepEqual(crossings(0, [e(50), e(29), e(1), e(20)], [0.8, 1], none), [
    { threshold: 0.8, index: 2, usage: 80, quota: 100 },
    { threshold: 1, index: 3, usage: 100, quota: 100 },
  ]);
  // Another partition's share came first: the first event here crosses both.
  assert.deepEqual(crossings(95, [e(10)], [0.8, 1], none), [
    { threshold: 0.8, index: 0, usage: 105, quota: 100 },
    { threshold: 1, index: 0, usage: 105, quota: 100 },
  ]);
  // Already alerted thresholds are skipped.
  assert.deepEqual(crossings(95, [e(10)], [0.8, 1], (t) => t === 0.8), [
    { threshold: 1, index: 0, usage: 105, quota: 100 },
  ]);
  // A quota lowered mid-hour applies from its first event on.
  assert.deepEqual(crossings(60, [e(1, 100), e(1, 50)], [0.8, 1], none), [
    { threshold: 0.8, index: 1, usage: 62, quota: 50 },
    { threshold: 1, index: 1, usage: 62, quota: 50 },
  ]);
  assert.deepEqual(crossings(0, [e(79)], [0.8, 1], none), []);
});

Deno.test("reconcileHour() confirms, does not confirm, and raises late alerts", () => {
  const usage = new Map([["a", 120], ["b", 85], ["c", 100], ["d", 90], ["e", 500]]);
  const quotas = new Map([["a", 100], ["b", 100], ["c", 100], ["d", 200], ["e", 1_000]]);
  const r = reconcileHour(
    [0.8, 1],
    [
      { email: "a", threshold: 0.8, source: "speed" },
      { email: "b", threshold: 0.8, source: "speed" },
      { email: "c", threshold: 0.8, source: "speed" },
      { email: "c", threshold: 1, source: "speed" }, // exactly at the quota: confirmed
      { email: "d", threshold: 0.8, source: "speed" }, // quota raised since: 90 < 160
      { email: "x", threshold: 1, source: "speed" }, // no batch usage at all
    ],
    usage,
    quotas,
  );
  assert.deepEqual(r.raise, [{ email: "a", threshold: 1, usage: 120, quota: 100 }]);
  assert.deepEqual(r.agreement, [
    { threshold: 0.8, speedAlerts: 4, confirmed: 3, unconfirmed: 1, late: 0 },
    { threshold: 1, speedAlerts: 2, confirmed: 1, unconfirmed: 1, late: 1 },
  ]);
  assert.deepEqual(
    r.verdicts.map((v) => `${v.email} ${v.threshold} ${v.status}`),
    [
      "a 0.8 confirmed",
      "a 1 late",
      "b 0.8 confirmed",
      "c 0.8 confirmed",
      "c 1 confirmed",
      "d 0.8 unconfirmed",
      "x 1 unconfirmed",
    ],
  );
  // A re-run: the batch alert raised before stays late, nothing is raised twice.
  const again = reconcileHour(
    [0.8, 1],
    [
      { email: "a", threshold: 0.8, source: "speed" },
      { email: "a", threshold: 1, source: "batch" },
    ],
    new Map([["a", 120]]),
    new Map([["a", 100]]),
  );
  assert.deepEqual(again.raise, []);
  assert.deepEqual(again.agreement[1], {
    threshold: 1,
    speedAlerts: 0,
    confirmed: 0,
    unconfirmed: 0,
    late: 1,
  });
});

Deno.test("signBody() and verifySignature() agree; a changed body or secret fails", async () => {
  const body = '{"email":"a@example.com","threshold":1}';
  const sig = await signBody("s3cret", body);
  assert.match(sig, /^sha256=[0-9a-f]{64}$/);
  assert.equal(await verifySignature("s3cret", body, sig), true);
  assert.equal(await verifySignature("s3cret", body + " ", sig), false);
  assert.equal(await verifySignature("other", body, sig), false);
  assert.equal(await verifySignature("s3cret", body, null), false);
  assert.equal(await verifySignature("s3cret", body, "sha256=zz"), false);
});

Deno.test("backoffAfter() doubles from the first wait up to the cap", () => {
  const retry = { maxAttempts: 10, backoffMs: 1_000, maxBackoffMs: 5_000 };
  assert.deepEqual([1, 2, 3, 4, 5].map((n) => backoffAfter(n, retry)), [
    1_000,
    2_000,
    4_000,
    5_000,
    5_000,
  ]);
});

Deno.test("alertJson() is the one JSON form of an alert; deliveryId() is stable per output", () => {
  const a = {
    id: 7,
    email: "u@example.com",
    hour: Date.UTC(2026, 10, 28, 10),
    threshold: 0.8,
    quota: 5_000_000,
    usage: 4_000_100,
    crossedAt: Date.UTC(2026, 10, 28, 10, 3, 1),
    detectedAt: Date.UTC(2026, 10, 28, 10, 3, 2, 5),
    source: "speed" as const,
    partition: 1,
    offset: 42,
  };
  assert.deepEqual(alertJson(a), {
    id: 7,
    email: "u@example.com",
    hour: "2026-11-28T10:00:00.000Z",
    threshold: 0.8,
    quota: 5_000_000,
    usage: 4_000_100,
    crossed_at: "2026-11-28T10:03:01.000Z",
    detected_at: "2026-11-28T10:03:02.005Z",
    source: "speed",
    partition: 1,
    offset: 42,
  });
  assert.equal(deliveryId(7, "webhook"), "quota-alert-7-webhook");
});
