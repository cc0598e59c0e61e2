/**
 * The cause of Node's `TimeoutNegativeWarning` on every kafkajs connection,
 * fixed where it happens. kafkajs 2.2.4 (in maintenance, no release to take)
 * starts each connection's request queue with `throttledUntil = -1`, and its
 * `scheduleCheckPendingRequests` arms `setTimeout(check, throttledUntil -
 * Date.now())` when nothing is pending: a delay of minus the epoch, which Node
 * runs after 1 ms and reports as a warning on stderr. The method below is
 * kafkajs' own (src/network/requestQueue/index.js) with the delay clamped at
 * 0, which Node also runs after 1 ms: same behaviour, no warning.
 *
 * Imported for its effect by the one place a client is built (kafka/_client.ts)
 * and by the stack's readiness probe; it patches the module kafkajs itself
 * loads, so every kafkajs client of the process has it.
 */
// @ts-types="./kafkajs_timer_fix_types.d.ts"
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

/** kafkajs' CHECK_PENDING_REQUESTS_INTERVAL (not exported). */
const CHECK_PENDING_REQUESTS_INTERVAL = 10;

RequestQueue.prototype.scheduleCheckPendingRequests = function (this: RequestQueue): void {
  // If we're throttled: check when the throttle should be resolved; with
  // requests pending, soon; otherwise at once. (kafkajs' comment, shortened.)
  let scheduleAt = this.throttledUntil - Date.now();
  if (!this.throttleCheckTimeoutId) {
    if (this.pending.length > 0) {
      scheduleAt = scheduleAt > 0 ? scheduleAt : CHECK_PENDING_REQUESTS_INTERVAL;
    }
    this.throttleCheckTimeoutId = setTimeout(() => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    }, Math.max(0, scheduleAt));
  }
};
