/**
 * The cause of Node's `TimeoutNegativeWarning` on every kafkajs connection,
 * fixed where it happens. kafkajs 2.2.4 (in maintenance, no release to take)
 * starts each connection's request queue with `throttledUntil = -1` and arms
 * `setTimeout(check, throttledUntil - Date.now())` when nothing is pending: a
 * delay of minus the epoch, which Node runs after 1 ms and reports as a
 * warning on stderr. Here, with nothing pending, `scheduleCheckPendingRequests`
 * sees a past `throttledUntil` as one millisecond ahead, so the delay is 0 or
 * 1 (the same 1 ms) and nothing is printed; with requests pending (kafkajs
 * then waits its own 10 ms) or a real throttle, it runs as it is.
 *
 * Imported for its effect by the one place a client is built (kafka/_client.ts) and
 * by the stack's readiness probe; it patches the module kafkajs itself loads.
 */
// @ts-types="./kafkajs_timer_fix_types.d.ts"
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

const proto = RequestQueue.prototype;
const schedule = proto.scheduleCheckPendingRequests;
if (!(schedule as { fixed?: boolean }).fixed) {
  const fixed = function (this: RequestQueue) {
    const throttledUntil = this.throttledUntil;
    const now = Date.now();
    if (this.pending.length > 0 || throttledUntil > now) return schedule.call(this);
    // Only for the computation of the delay: the queue keeps its own value.
    // One millisecond ahead, as kafkajs reads the clock again a moment later.
    this.throttledUntil = now + 1;
    try {
      return schedule.call(this);
    } finally {
      this.throttledUntil = throttledUntil;
    }
  };
  proto.scheduleCheckPendingRequests = Object.assign(fixed, { fixed: true });
}
