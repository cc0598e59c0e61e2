/**
 * The quota alert fold loop's decision (src/alerts/fold.ts, nextFold): when
 * own shares are folded, when orphans are looked for, and that a due look
 * for orphans leaves own shares to their pace.
 */
import assert from "node:assert/strict";
import { nextFold } from "../../src/alerts/fold.ts";

const NOW = Date.UTC(2026, 11, 1, 12);
const base = {
  now: NOW,
  pendingEmpty: false,
  newestMs: NOW - 3 * 3_600_000, // a backlog: events of three hours ago
  behind: false,
  liveAt: -Infinity,
  backlogAt: -Infinity,
  behindAt: -Infinity,
  lastOrphansAt: NOW - 1_000,
};

Deno.test("nextFold(): nothing pending and no look for orphans due: idle", () => {
  assert.deepEqual(nextFold({ ...base, pendingEmpty: true }), { kind: "idle" });
});

Deno.test("nextFold(): nothing pending, orphans due: a look for orphans only", () => {
  assert.deepEqual(nextFold({ ...base, pendingEmpty: true, lastOrphansAt: NOW - 10_000 }), {
    kind: "fold",
    own: false,
    orphans: true,
  });
});

Deno.test("nextFold(): a backlog's shares wait for their pace, at most 200 ms at a time", () => {
  assert.deepEqual(nextFold({ ...base, backlogAt: NOW + 30_000 }), { kind: "wait", ms: 200 });
  assert.deepEqual(nextFold({ ...base, backlogAt: NOW + 50 }), { kind: "wait", ms: 50 });
  assert.deepEqual(nextFold({ ...base, backlogAt: NOW }), {
    kind: "fold",
    own: true,
    orphans: false,
  });
});

Deno.test("nextFold(): a due look for orphans does not fold a backlog's shares before their pace", () => {
  assert.deepEqual(
    nextFold({ ...base, backlogAt: NOW + 30_000, lastOrphansAt: NOW - 10_000 }),
    { kind: "fold", own: false, orphans: true },
  );
  assert.deepEqual(nextFold({ ...base, backlogAt: NOW - 1, lastOrphansAt: NOW - 10_000 }), {
    kind: "fold",
    own: true,
    orphans: true,
  });
});

Deno.test("nextFold(): shares about now follow the live pace, not the backlog's", () => {
  const live = { ...base, newestMs: NOW - 2_000, backlogAt: NOW + 30_000 };
  assert.deepEqual(nextFold({ ...live, liveAt: NOW - 1 }), {
    kind: "fold",
    own: true,
    orphans: false,
  });
  assert.deepEqual(nextFold({ ...live, liveAt: NOW + 120 }), { kind: "wait", ms: 120 });
  // Ten minutes old is still about now; older is a backlog.
  assert.equal(nextFold({ ...live, newestMs: NOW - 600_000, liveAt: NOW }).kind, "fold");
  assert.equal(nextFold({ ...live, newestMs: NOW - 600_001, liveAt: NOW }).kind, "wait");
});

Deno.test("nextFold(): while the speed layer is behind, shares wait for the behind pace, live or not", () => {
  const behind = { ...base, behind: true, behindAt: NOW + 40_000 };
  assert.deepEqual(nextFold(behind), { kind: "wait", ms: 200 });
  // Not even shares about now, whose live pace has come, are folded before it.
  assert.deepEqual(nextFold({ ...behind, newestMs: NOW - 1_000, liveAt: NOW - 1 }), {
    kind: "wait",
    ms: 200,
  });
  assert.deepEqual(nextFold({ ...behind, behindAt: NOW }), {
    kind: "fold",
    own: true,
    orphans: false,
  });
  // Caught up (the latest share was not behind): the ordinary pace again.
  assert.deepEqual(nextFold({ ...behind, behind: false }), {
    kind: "fold",
    own: true,
    orphans: false,
  });
});
