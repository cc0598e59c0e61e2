/**
 * The pure core shared by the speed and batch layers: event validation, what a
 * metric means, aggregation, windows, lateness, the quota rule and the quota
 * alert rules. No I/O.
 */
export * from "./vocabulary.ts";
export * from "./event.ts";
export * from "./validate.ts";
export * from "./metric.ts";
export * from "./aggregate.ts";
export * from "./window.ts";
export * from "./partition_windows.ts";
export * from "./quota.ts";
export * from "./completeness.ts";
export * from "./quota_alerts.ts";
