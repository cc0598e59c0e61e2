/**
 * The small async tools of src/async/: delay and pause, retry with backoff,
 * a serial queue, a wake-up call. Nothing here measures time: waits are a few ms or aborted, and the
 * test sanitizers fail a test that leaves a timer behind.
 */
import assert from "node:assert/strict";
import { delay, pause } from "../../src/async/delay.ts";
import { backoffMs, retry } from "../../src/async/retry.ts";
import { Serial } from "../../src/async/serial.ts";
import { Wakeup } from "../../src/async/wakeup.ts";

const isAbortError = (e: unknown) => e instanceof DOMException && e.name === "AbortError";

Deno.test("delay() resolves after the wait", async () => {
  assert.equal(await delay(1), undefined);
});

Deno.test("delay() rejects with the signal's reason when aborted during the wait", async () => {
  const stop = new AbortController();
  const reason = new Error("stopping");
  const waiting = delay(60_000, { signal: stop.signal });
  stop.abort(reason);
  await assert.rejects(waiting, (e) => e === reason);
});

Deno.test("delay() rejects at once when the signal is already aborted", async () => {
  await assert.rejects(delay(60_000, { signal: AbortSignal.abort() }), isAbortError);
});

const backoffCases: [string, Parameters<typeof backoffMs>[1], number[]][] = [
  ["doubles from 100 ms up to 5 s by default", undefined, [100, 200, 400, 800, 1600, 3200, 5000]],
  ["starts at initialMs and stops at maxMs", { initialMs: 200, maxMs: 1000 }, [
    200,
    400,
    800,
    1000,
    1000,
    1000,
    1000,
  ]],
  ["grows by multiplier", { initialMs: 10, multiplier: 3, maxMs: 500 }, [
    10,
    30,
    90,
    270,
    500,
    500,
    500,
  ]],
];
for (const [what, options, expected] of backoffCases) {
  Deno.test(`backoffMs() ${what}`, () => {
    assert.deepEqual(expected.map((_, i) => backoffMs(i + 1, options)), expected);
  });
}

Deno.test("retry() resolves with the first success and reports each failure with its wait", async () => {
  const attempts: number[] = [];
  const errors: [string, number, number][] = [];
  const out = await retry((attempt) => {
    attempts.push(attempt);
    if (attempt < 4) throw new Error(`failure ${attempt}`);
    return "written";
  }, {
    initialMs: 1,
    maxMs: 3,
    onError: (e, attempt, next) => errors.push([(e as Error).message, attempt, next]),
  });
  assert.equal(out, "written");
  assert.deepEqual(attempts, [1, 2, 3, 4]);
  assert.deepEqual(errors, [["failure 1", 1, 1], ["failure 2", 2, 2], ["failure 3", 3, 3]]);
});

Deno.test("retry() rejects with the signal's reason when aborted during a wait", async () => {
  const stop = new AbortController();
  const reason = new Error("stopping");
  let calls = 0;
  const retrying = retry(() => {
    calls++;
    return Promise.reject(new Error("down"));
  }, { initialMs: 60_000, signal: stop.signal, onError: () => stop.abort(reason) });
  await assert.rejects(retrying, (e) => e === reason);
  assert.equal(calls, 1);
});

Deno.test("retry() never calls fn once the signal is aborted", async () => {
  let called = false;
  await assert.rejects(retry(() => (called = true), { signal: AbortSignal.abort() }), isAbortError);
  assert.equal(called, false);
});

Deno.test("retry() rejects with the reason, not the error, of an attempt that failed after the abort", async () => {
  const stop = new AbortController();
  const reason = new Error("stopping");
  let reported = false;
  const retrying = retry(() => {
    stop.abort(reason);
    throw new Error("down");
  }, { signal: stop.signal, onError: () => reported = true });
  await assert.rejects(retrying, (e) => e === reason);
  assert.equal(reported, false);
});

Deno.test("retry() keeps the success of an attempt that ends after the abort", async () => {
  const stop = new AbortController();
  const out = await retry(() => {
    stop.abort();
    return 7;
  }, { signal: stop.signal });
  assert.equal(out, 7);
});

Deno.test("Serial.run() starts a task only once the one before it has settled", async () => {
  const q = new Serial();
  const log: string[] = [];
  const gate = Promise.withResolvers<void>();
  const a = q.run(async () => {
    log.push("a starts");
    await gate.promise;
    log.push("a ends");
  });
  const b = q.run(() => log.push("b runs"));
  await delay(0); // a whole turn of the event loop: b would have run by now
  assert.deepEqual(log, ["a starts"]);
  gate.resolve();
  await Promise.all([a, b]);
  assert.deepEqual(log, ["a starts", "a ends", "b runs"]);
});

Deno.test("Serial.run() settles with each task's outcome; a failure does not stop the queue", async () => {
  const q = new Serial();
  const failure = new Error("task failed");
  const one = q.run(() => 1);
  const two = q.run(() => Promise.reject(failure));
  const three = q.run(async () => await Promise.resolve(3));
  assert.equal(await one, 1);
  await assert.rejects(two, (e) => e === failure);
  assert.equal(await three, 3);
});

Deno.test("Serial.idle() waits for every task queued so far and never rejects", async () => {
  const q = new Serial();
  assert.equal(await q.idle(), undefined);
  const done: number[] = [];
  q.run(() => delay(1).then(() => done.push(1)));
  q.run(() => Promise.reject(new Error("failed"))).catch(() => {});
  q.run(() => done.push(3));
  await q.idle();
  assert.deepEqual(done, [1, 3]);
});

Deno.test("Serial skips the tasks that have not started once its signal aborts", async () => {
  const stop = new AbortController();
  const reason = new Error("stopping");
  const q = new Serial({ signal: stop.signal });
  const gate = Promise.withResolvers<void>();
  const running = q.run(async () => {
    await gate.promise;
    return "finished";
  });
  let ran = false;
  const queued = q.run(() => (ran = true));
  await delay(0); // the first task has started, the second waits its turn
  stop.abort(reason);
  gate.resolve();
  const [finished] = await Promise.all([running, assert.rejects(queued, (e) => e === reason)]);
  assert.equal(finished, "finished");
  assert.equal(ran, false);
  await assert.rejects(q.run(() => "late"), (e) => e === reason);
});

Deno.test("pause() resolves after the wait, and at once (never rejecting) on abort", async () => {
  assert.equal(await pause(1), undefined);
  const ac = new AbortController();
  const waiting = pause(60_000, ac.signal);
  ac.abort();
  assert.equal(await waiting, undefined);
  assert.equal(await pause(60_000, AbortSignal.abort()), undefined);
});

Deno.test("Wakeup.wait() ends at wake(), keeps a wake-up given before the wait, and ends on abort", async () => {
  const w = new Wakeup();
  const order: string[] = [];
  const waiting = w.wait(60_000).then(() => order.push("woken"));
  order.push("waiting");
  w.wake();
  await waiting;
  assert.deepEqual(order, ["waiting", "woken"]);

  w.wake(); // nobody waits: the next wait returns at once
  await w.wait(60_000);

  const ac = new AbortController();
  const aborted = w.wait(60_000, ac.signal);
  ac.abort();
  assert.equal(await aborted, undefined);
  assert.equal(await w.wait(60_000, ac.signal), undefined);
});
