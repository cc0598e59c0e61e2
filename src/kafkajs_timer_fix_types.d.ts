/** The part of kafkajs' internal RequestQueue that timer_fix.ts patches. */
declare class RequestQueue {
  throttledUntil: number;
  pending: unknown[];
  scheduleCheckPendingRequests(): void;
}
export default RequestQueue;
