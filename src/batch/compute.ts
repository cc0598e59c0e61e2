/**
 * The batch layer's pure arithmetic for one hour: lake columns joined with
 * user metadata, folded by the core's compiled metrics and GroupAccumulator
 * (the same rules as the speed layer), plus per-user usage for the quota rule
 * and the devices without metadata.
 *
 * Strings are handled as dictionary codes, so the per-row work is typed-array
 * arithmetic: the user join runs once per distinct device, and each metric
 * first folds the rows that agree on every field it reads (key, filter,
 * count_distinct member) into one `PartialAggregate`, then hands those to the
 * core with `addPartial` and a representative row. A metric that reads a
 * field with no dictionary (a filter on bytes, a group by timestamp) is folded
 * row by row through the core instead; both give the same result.
 */
import type { BatchPlan, EventField, MetricPlan } from "../config/plan.ts";
import { GroupAccumulator } from "../core/aggregate.ts";
import {
  type CompiledMetric,
  compileMetric,
  metricFields,
  type MetricRow,
} from "../core/metric.ts";
import { type QuotaBreach, quotaBreaches, quotasByEmail } from "../core/quota.ts";
import { EVENT_FIELDS } from "../core/vocabulary.ts";
import type { DictionaryColumn } from "../lake/mod.ts";
import { UnknownDevicesError } from "./errors.ts";

/** One device's user metadata. */
export interface UserMeta {
  readonly email: string;
  readonly name: string;
  readonly quota: number;
}

/**
 * Lake columns as `readHour` returns them: numbers (maybe bigint), strings as
 * arrays or, better, as `DictionaryColumn`s.
 */
export type HourColumns = Readonly<Record<string, ArrayLike<unknown> | DictionaryColumn>>;

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
  /**
   * What the rows dropped by the `drop` policy add to each of `computeHour`'s
   * `dropped` metrics (speed metrics the batch ones reconcile with): the
   * speed layer counted them, the batch did not.
   */
  readonly droppedValues: ReadonlyMap<string, number>;
  /** Each known email's usage in the hour (emails with no bytes left out). */
  readonly usageByEmail: ReadonlyMap<string, number>;
  /** Each known email's hourly quota (core/quota.ts quotasByEmail). */
  readonly quotaByEmail: ReadonlyMap<string, number>;
}

/** The lake columns an hour's batch needs: fields the metrics read, `id` for the join, `bytes` for quotas. */
export function neededColumns(
  batch: BatchPlan,
  /** Speed metrics also evaluated over dropped rows (computeHour's `dropped`). */
  dropped: readonly MetricPlan[] = [],
): EventField[] {
  const used = new Set<string>(["id"]);
  if (batch.quota.enabled) used.add("bytes");
  for (const m of [...batch.metrics, ...dropped]) {
    const { key, filter, value } = metricFields(m);
    for (const f of [...key, ...filter]) used.add(f);
    if (value !== undefined) used.add(value);
  }
  return EVENT_FIELDS.filter((f) => used.has(f));
}

function isDictionary(col: unknown): col is DictionaryColumn {
  return typeof col === "object" && col !== null && "dict" in col && "codes" in col;
}

/** A string column as codes, interning plain arrays (readers without dictionaries). */
function coded(col: HourColumns[string] | undefined, n: number): DictionaryColumn | undefined {
  if (!col) return undefined;
  if (isDictionary(col)) return col;
  const index = new Map<string, number>();
  const dict: string[] = [];
  const codes = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = String(col[i]);
    let c = index.get(v);
    if (c === undefined) index.set(v, c = dict.push(v) - 1);
    codes[i] = c;
  }
  return { dict, codes };
}

function numbers(col: HourColumns[string] | undefined, n: number): ArrayLike<number> | undefined {
  if (!col || isDictionary(col)) return undefined;
  if (col instanceof Float64Array || col instanceof Int32Array) return col;
  if (col instanceof BigInt64Array) return Float64Array.from(col, Number);
  if (n > 0 && typeof col[0] === "number") return col as ArrayLike<number>;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = Number(col[i]);
  return out;
}

/** Timestamps in epoch seconds (MetricRow's unit), whatever the reader gave. */
function seconds(col: HourColumns[string] | undefined, n: number): ArrayLike<number> | undefined {
  if (!col || isDictionary(col)) return undefined;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = col[i];
    const ms = v instanceof Date ? v.getTime() : Number(v);
    out[i] = Math.floor(ms / 1000);
  }
  return out;
}

/** The fields with a dictionary: the lake's strings, and the user's email and name (by device). */
type StringField = "id" | "antenna_id" | "app" | "email" | "name";
const STRING_FIELDS: ReadonlySet<string> = new Set<StringField>([
  "id",
  "antenna_id",
  "app",
  "email",
  "name",
]);

/**
 * The dictionary columns a metric's rows must agree on to be folded together,
 * or undefined when it reads another field as more than its aggregated value.
 */
function foldFields(m: MetricPlan): StringField[] | undefined {
  const { key, filter, value } = metricFields(m);
  const read = new Set<string>([...key, ...filter]);
  if (m.aggregation === "count_distinct") read.add(value!);
  else if (value !== undefined && value !== "bytes" && value !== "timestamp") return undefined;
  for (const f of read) if (!STRING_FIELDS.has(f)) return undefined;
  // Email and name are the device's: a fold by id already keeps them apart.
  if (read.has("id")) {
    read.delete("email");
    read.delete("name");
  }
  return [...read] as StringField[];
}

/** Sum, count, min and max per slot, growing as slots are added. */
class Partials {
  sum = new Float64Array(0);
  count = new Float64Array(0);
  min = new Float64Array(0);
  max = new Float64Array(0);
  constructor(size: number) {
    this.grow(size);
  }
  grow(size: number): void {
    const grown = (a: Float64Array, fill: number) => {
      const b = new Float64Array(size).fill(fill);
      b.set(a);
      return b;
    };
    this.sum = grown(this.sum, 0);
    this.count = grown(this.count, 0);
    this.min = grown(this.min, Infinity);
    this.max = grown(this.max, -Infinity);
  }
}

/** Composite keys up to this many combinations index arrays directly; more go through a Map. */
const DIRECT_SLOTS = 1 << 20;

/**
 * Folds the rows of one metric by the codes of `fields` into partials, then
 * into `acc` with a representative row per combination.
 */
function foldMetric(
  acc: GroupAccumulator,
  fields: readonly StringField[],
  cols: Readonly<Record<StringField, DictionaryColumn | undefined>>,
  values: ArrayLike<number> | undefined,
  rows: number,
  keep: Uint8Array | undefined,
  idCodes: ArrayLike<number>,
  userOf: readonly (UserMeta | undefined)[],
): void {
  const codes = fields.map((f) => cols[f]!.codes);
  const radix = fields.map((f) => Math.max(1, cols[f]!.dict.length));
  const combos = radix.reduce((a, b) => a * b, 1);
  const direct = combos <= DIRECT_SLOTS;
  const p = new Partials(direct ? combos : 1 << 16);
  const slotOf = new Map<number, number>();
  const keyOf: number[] = [];
  const single = codes.length === 1 ? codes[0] : undefined;
  for (let i = 0; i < rows; i++) {
    if (keep !== undefined && keep[idCodes[i]] === 0) continue;
    let k = 0;
    if (single !== undefined) k = single[i];
    else for (let f = 0; f < codes.length; f++) k = k * radix[f] + codes[f][i];
    let s = k;
    if (!direct) {
      let found = slotOf.get(k);
      if (found === undefined) {
        found = keyOf.push(k) - 1;
        slotOf.set(k, found);
        if (found >= p.count.length) p.grow(p.count.length * 2);
      }
      s = found;
    }
    p.count[s]++;
    if (values !== undefined) {
      const v = values[i];
      p.sum[s] += v;
      if (v < p.min[s]) p.min[s] = v;
      if (v > p.max[s]) p.max[s] = v;
    }
  }
  const row: MetricRow = { bytes: 0, timestamp: 0, app: "", id: "", antenna_id: "" };
  const slots = direct ? combos : keyOf.length;
  const partial = { sum: 0, count: 0, min: 0, max: 0 };
  for (let s = 0; s < slots; s++) {
    if (p.count[s] === 0) continue;
    let k = direct ? s : keyOf[s];
    for (let f = fields.length - 1; f >= 0; f--) {
      const code = k % radix[f];
      k = (k - code) / radix[f];
      const field = fields[f];
      row[field] = cols[field]!.dict[code];
      if (field === "id") {
        const user = userOf[code]!;
        row.email = user.email;
        row.name = user.name;
      }
    }
    if (!acc.metric.accepts(row)) continue;
    partial.sum = p.sum[s];
    partial.count = p.count[s];
    partial.min = p.min[s];
    partial.max = p.max[s];
    acc.addPartial(row, partial);
  }
}

/** An hour's columns in the shapes the fold reads: strings as codes, numbers as arrays. */
interface Columns {
  readonly idDict: readonly string[];
  readonly idCodes: ArrayLike<number>;
  /** The lake's string columns; email and name are added once the users are joined. */
  readonly cols: Readonly<Record<StringField, DictionaryColumn | undefined>>;
  readonly bytes: ArrayLike<number> | undefined;
  /** Epoch seconds. */
  readonly ts: ArrayLike<number> | undefined;
}

function prepared(columns: HourColumns, rows: number): Columns {
  const ids = coded(columns.id, rows);
  if (!ids && rows > 0) throw new TypeError("computeHour() needs the id column");
  return {
    idDict: ids?.dict ?? [],
    idCodes: ids?.codes ?? new Int32Array(0),
    cols: {
      id: ids,
      antenna_id: coded(columns.antenna_id, rows),
      app: coded(columns.app, rows),
      email: undefined,
      name: undefined,
    },
    bytes: numbers(columns.bytes, rows),
    ts: seconds(columns.timestamp, rows),
  };
}

/** The user join's outcome, per device code. */
interface Joined {
  readonly userOf: (UserMeta | undefined)[];
  readonly unknown: string[];
  readonly unknownRows: number;
  /** 1 for devices whose rows count, 0 for those dropped by policy; undefined: all count. */
  readonly keep: Uint8Array | undefined;
  /** Each device's bytes in the hour. */
  readonly deviceBytes: Float64Array;
  /** The user of unknown devices under `unknown_id`: nobody's usage. */
  readonly placeholder: UserMeta;
}

/**
 * The join, once per distinct device: each device's user (or the
 * placeholder of the `unknown_id` policy), the devices without metadata.
 * Throws `UnknownDevicesError` under `fail`.
 */
function joinUsers(
  batch: BatchPlan,
  c: Columns,
  rows: number,
  users: ReadonlyMap<string, UserMeta>,
): Joined {
  const devices = c.idDict.length;
  const deviceRows = new Float64Array(devices);
  const deviceBytes = new Float64Array(devices);
  for (let i = 0; i < rows; i++) {
    const code = c.idCodes[i];
    deviceRows[code]++;
    if (c.bytes) deviceBytes[code] += c.bytes[i];
  }
  const policy = batch.unknownDevice.policy;
  const id = batch.unknownDevice.id;
  const placeholder: UserMeta = { email: id, name: id, quota: 0 };
  const userOf: (UserMeta | undefined)[] = new Array(devices);
  const unknown: string[] = [];
  let unknownRows = 0;
  for (let code = 0; code < devices; code++) {
    if (deviceRows[code] === 0) continue;
    const user = users.get(c.idDict[code]);
    if (user === undefined) {
      unknown.push(c.idDict[code]);
      unknownRows += deviceRows[code];
      if (policy === "unknown_id") userOf[code] = placeholder;
      continue;
    }
    userOf[code] = user;
  }
  if (policy === "fail" && unknown.length > 0) {
    throw new UnknownDevicesError(unknown.length, unknownRows, unknown.slice(0, 3));
  }
  // Rows of devices without a user (dropped by policy) are skipped everywhere.
  let keep: Uint8Array | undefined;
  if (unknown.length > 0 && policy !== "unknown_id") {
    keep = new Uint8Array(devices);
    for (let code = 0; code < devices; code++) keep[code] = userOf[code] === undefined ? 0 : 1;
  }
  return { userOf, unknown, unknownRows, keep, deviceBytes, placeholder };
}

/**
 * A user field as a dictionary column of the hour's rows: the distinct values
 * of the joined users (placeholder included), coded once per device, so a
 * metric by email folds 50,000 emails rather than 100,000 devices. Rows of
 * devices without a user get -1 (they are dropped before any fold reads them).
 */
function userColumn(
  field: "email" | "name",
  c: Columns,
  rows: number,
  userOf: readonly (UserMeta | undefined)[],
): DictionaryColumn {
  const index = new Map<string, number>();
  const dict: string[] = [];
  const byDevice = new Int32Array(userOf.length).fill(-1);
  for (let code = 0; code < userOf.length; code++) {
    const user = userOf[code];
    if (user === undefined) continue;
    const v = user[field];
    let k = index.get(v);
    if (k === undefined) index.set(v, k = dict.push(v) - 1);
    byDevice[code] = k;
  }
  const codes = new Int32Array(rows);
  for (let i = 0; i < rows; i++) codes[i] = byDevice[c.idCodes[i]];
  return { dict, codes };
}

/**
 * Each known email's usage in the hour: the sum over its devices with
 * positive usage (the placeholder of unknown devices is nobody's).
 */
function usageOf({ userOf, deviceBytes, placeholder }: Joined): Map<string, number> {
  const out = new Map<string, number>();
  for (let code = 0; code < userOf.length; code++) {
    const user = userOf[code];
    const usage = deviceBytes[code];
    if (user === undefined || user === placeholder || usage <= 0) continue;
    out.set(user.email, (out.get(user.email) ?? 0) + usage);
  }
  return out;
}

/** Row `i` of the hour into `row` (its event fields). */
function fillRow(row: MetricRow, c: Columns, i: number): void {
  row.id = c.idDict[c.idCodes[i]];
  if (c.bytes) row.bytes = c.bytes[i];
  if (c.ts) row.timestamp = c.ts[i];
  const { app, antenna_id } = c.cols;
  if (app) row.app = app.dict[app.codes[i]];
  if (antenna_id) row.antenna_id = antenna_id.dict[antenna_id.codes[i]];
}

const emptyRow = (): MetricRow => ({ bytes: 0, timestamp: 0, app: "", id: "", antenna_id: "" });

/** The metrics `foldMetric` cannot fold by codes, row by row through the core. */
function foldRowWise(
  metrics: readonly CompiledMetric[],
  accs: readonly GroupAccumulator[],
  c: Columns,
  rows: number,
  userOf: readonly (UserMeta | undefined)[],
): void {
  if (metrics.length === 0) return;
  const row = emptyRow();
  for (let i = 0; i < rows; i++) {
    const user = userOf[c.idCodes[i]];
    if (user === undefined) continue;
    fillRow(row, c, i);
    row.email = user.email;
    row.name = user.name;
    for (let j = 0; j < metrics.length; j++) if (metrics[j].accepts(row)) accs[j].add(row);
  }
}

/** What the rows dropped by policy add to each of the `dropped` speed metrics. */
function droppedValuesOf(
  dropped: readonly MetricPlan[],
  c: Columns,
  rows: number,
  keep: Uint8Array | undefined,
): Map<string, number> {
  const out = new Map<string, number>();
  if (!keep || dropped.length === 0) return out;
  const speed = dropped.map(compileMetric);
  for (const m of speed) out.set(m.name, 0);
  const row = emptyRow();
  for (let i = 0; i < rows; i++) {
    if (keep[c.idCodes[i]] === 1) continue;
    fillRow(row, c, i);
    for (const m of speed) if (m.accepts(row)) out.set(m.name, out.get(m.name)! + m.value(row));
  }
  return out;
}

/**
 * Computes every batch metric, the quota breaches and the unknown devices of
 * one hour. Throws `UnknownDevicesError` under the `fail` policy.
 */
export function computeHour(
  batch: BatchPlan,
  columns: HourColumns,
  rows: number,
  users: ReadonlyMap<string, UserMeta>,
  dropped: readonly MetricPlan[] = [],
): HourResult {
  const metrics = batch.metrics.map(compileMetric);
  const accs = metrics.map((m) => new GroupAccumulator(m));
  const c = prepared(columns, rows);
  const joined = joinUsers(batch, c, rows, users);
  const { userOf, unknown, unknownRows, keep } = joined;
  // Email and name as dictionary columns, made for the first metric that reads them.
  const cols = { ...c.cols };
  const column = (f: StringField) =>
    (f === "email" || f === "name") && c.cols.id
      ? cols[f] ??= userColumn(f, c, rows, userOf)
      : cols[f];

  const rowWise: number[] = [];
  batch.metrics.forEach((plan, j) => {
    const fields = foldFields(plan);
    if (!fields || fields.some((f) => !column(f))) return void rowWise.push(j);
    const values = plan.aggregation === "count" || plan.aggregation === "count_distinct"
      ? undefined
      : plan.field === "bytes"
      ? c.bytes
      : c.ts;
    foldMetric(accs[j], fields, cols, values, rows, keep, c.idCodes, userOf);
  });
  foldRowWise(rowWise.map((j) => metrics[j]), rowWise.map((j) => accs[j]), c, rows, userOf);

  const out = new Map<string, Map<string, number>>();
  for (const acc of accs) out.set(acc.metric.name, acc.results());
  const usageByEmail = usageOf(joined);
  const quotaByEmail = quotasByEmail(users.values());
  return {
    metrics: out,
    breaches: batch.quota.enabled ? quotaBreaches(usageByEmail, quotaByEmail) : [],
    unknownDevices: unknown.length,
    unknownRows,
    unknownSample: unknown.slice(0, 5),
    rowsUsed: rows - (keep ? unknownRows : 0),
    droppedValues: droppedValuesOf(dropped, c, rows, keep),
    usageByEmail,
    quotaByEmail,
  };
}
