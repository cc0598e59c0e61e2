/**
 * The batch layer's pure arithmetic for one hour: lake columns joined with
 * user metadata, folded by the core's compiled metrics and GroupAccumulator
 * (the same rules as the speed layer), plus per-user usage for the quota rule
 * and the devices without metadata. Columnar on purpose: one mutable
 * `MetricRow` is refilled per row and usage is added onto the user's own
 * record, so a 3.6 M-row hour allocates almost nothing per row.
 */
import type { BatchPlan, EventField, MetricPlan } from "../config/plan.ts";
import { GroupAccumulator } from "../core/aggregate.ts";
import { compileMetric, type MetricRow } from "../core/metric.ts";
import { type QuotaBreach, quotaBreaches, quotasByEmail } from "../core/quota.ts";
import { UnknownDevicesError } from "./errors.ts";

/** One device's user metadata, with this hour's usage added on during a run. */
export interface UserMeta {
  readonly email: string;
  readonly name: string;
  readonly quota: number;
  usage: number;
}

/** Lake columns as `readHour` returns them (numbers may come as bigint). */
export type HourColumns = Readonly<Record<string, ArrayLike<unknown>>>;

export interface HourResult {
  /** metric name → group key → value. */
  readonly metrics: Map<string, Map<string, number>>;
  readonly breaches: QuotaBreach[];
  /** Distinct device ids without metadata, and their rows. */
  readonly unknownDevices: number;
  readonly unknownRows: number;
  /** A few of them, for the log. */
  readonly unknownSample: string[];
  /** Rows that went into the metrics (rows minus dropped unknown ones). */
  readonly rowsUsed: number;
}

const EVENT_FIELDS: readonly EventField[] = ["bytes", "timestamp", "app", "id", "antenna_id"];

/** The lake columns an hour's batch needs: fields the metrics use, `id` for the join, `bytes` for quotas. */
export function neededColumns(batch: BatchPlan): EventField[] {
  const used = new Set<string>(["id"]);
  if (batch.quota.enabled) used.add("bytes");
  const note = (m: MetricPlan) => {
    for (const f of m.groupBy) used.add(f);
    if (m.aggregation !== "count") used.add(m.field);
    for (const f of Object.keys(m.filter?.in ?? {})) used.add(f);
    for (const f of Object.keys(m.filter?.notIn ?? {})) used.add(f);
  };
  batch.metrics.forEach(note);
  return EVENT_FIELDS.filter((f) => used.has(f));
}

function numbers(col: ArrayLike<unknown> | undefined, n: number): ArrayLike<number> | undefined {
  if (!col) return undefined;
  if (col instanceof Float64Array || col instanceof Int32Array) return col;
  if (col instanceof BigInt64Array) return Float64Array.from(col, Number);
  if (n > 0 && typeof col[0] === "number") return col as ArrayLike<number>;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(col[i]);
  return out;
}

function strings(col: ArrayLike<unknown> | undefined): ArrayLike<string> | undefined {
  return col as ArrayLike<string> | undefined;
}

/** Timestamps in epoch seconds (MetricRow's unit), whatever the reader gave. */
function seconds(col: ArrayLike<unknown> | undefined, n: number): ArrayLike<number> | undefined {
  if (!col) return undefined;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = col[i];
    const ms = v instanceof Date ? v.getTime() : Number(v);
    out[i] = Math.floor(ms / 1000);
  }
  return out;
}

/**
 * Computes every batch metric, the quota breaches and the unknown devices of
 * one hour. `users` is mutated: each user's `usage` is reset then summed.
 * Throws `UnknownDevicesError` under the `fail` policy.
 */
export function computeHour(
  batch: BatchPlan,
  columns: HourColumns,
  rows: number,
  users: ReadonlyMap<string, UserMeta>,
): HourResult {
  const metrics = batch.metrics.map(compileMetric);
  const accs = metrics.map((m) => new GroupAccumulator(m));
  const ids = strings(columns.id);
  if (!ids && rows > 0) throw new TypeError("computeHour() needs the id column");
  const bytes = numbers(columns.bytes, rows);
  const ts = seconds(columns.timestamp, rows);
  const apps = strings(columns.app);
  const antennas = strings(columns.antenna_id);

  for (const u of users.values()) u.usage = 0;
  const policy = batch.unknownDevice.policy;
  const placeholder: UserMeta = {
    email: batch.unknownDevice.id,
    name: batch.unknownDevice.id,
    quota: 0,
    usage: 0,
  };
  const unknown = new Map<string, number>();
  let unknownRows = 0;
  let used = 0;

  const row: MetricRow = { bytes: 0, timestamp: 0, app: "", id: "", antenna_id: "" };
  const nm = metrics.length;
  for (let i = 0; i < rows; i++) {
    const id = ids![i];
    let user = users.get(id);
    if (user === undefined) {
      unknown.set(id, (unknown.get(id) ?? 0) + 1);
      unknownRows++;
      if (policy !== "unknown_id") continue;
      user = placeholder;
    }
    row.id = id;
    if (bytes) row.bytes = bytes[i];
    if (ts) row.timestamp = ts[i];
    if (apps) row.app = apps[i];
    if (antennas) row.antenna_id = antennas[i];
    row.email = user.email;
    row.name = user.name;
    user.usage += row.bytes;
    used++;
    for (let j = 0; j < nm; j++) if (metrics[j].accepts(row)) accs[j].add(row);
  }

  if (policy === "fail" && unknown.size > 0) {
    throw new UnknownDevicesError(unknown.size, unknownRows, [...unknown.keys()].slice(0, 3));
  }

  const out = new Map<string, Map<string, number>>();
  for (const acc of accs) out.set(acc.metric.name, acc.results());

  let breaches: QuotaBreach[] = [];
  if (batch.quota.enabled) {
    const usage = new Map<string, number>();
    for (const u of users.values()) {
      if (u.usage > 0) usage.set(u.email, (usage.get(u.email) ?? 0) + u.usage);
    }
    breaches = quotaBreaches(usage, quotasByEmail(users.values()));
  }
  return {
    metrics: out,
    breaches,
    unknownDevices: unknown.size,
    unknownRows,
    unknownSample: [...unknown.keys()].slice(0, 5),
    rowsUsed: used,
  };
}
