/** The part of kafkajs' internal RequestQueue that kafkajs_timer_fix.ts replaces. */
declare class RequestQueue {
  throttledUntil: number;
  pending: unknown[];
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}
export default RequestQueue;
