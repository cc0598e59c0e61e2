/**
 * Aggregation arithmetic shared by both layers, and the one place where each
 * aggregation's combine rule is declared (`AGGREGATION_RULES`): how two
 * partial values of one group merge (sum and count add, min and max pick),
 * which part of a `PartialAggregate` it takes, and the same merge spelled in
 * SQL, for the speed layer's upserts and for the GROUP BY folds of the API.
 * count_distinct keeps the members, and its counts fold by their largest (a
 * lower bound). The views of sql/002 and sql/007 spell these folds by hand
 * (migrations are immutable); tests/core/combine_rule_test.ts checks them against
 * this rule on PostgreSQL.
 */
import type { Aggregation } from "./vocabulary.ts";
import type { CompiledMetric, MetricRow } from "./metric.ts";

type Numeric = Exclude<Aggregation, "count_distinct">;

/**
 * What a set of rows that agree on every field a metric reads (its key, its
 * filter, its count_distinct member) contributes, whatever the aggregation:
 * the sum, number, smallest and largest of their values. The batch layer folds
 * a whole hour's rows into these first, then hands them to the accumulator.
 */
export interface PartialAggregate {
  readonly sum: number;
  readonly count: number;
  readonly min: number;
  readonly max: number;
}

/** A way of merging two values of one group, in TypeScript and in SQL alike. */
export interface Combiner {
  /** Merges two values. */
  readonly combine: (a: number, b: number) => number;
  /** The same on two SQL expressions, e.g. an upsert's stored and incoming value. */
  readonly combineSql: (a: string, b: string) => string;
  /** The same as an SQL aggregate over a column, folding its values in a GROUP BY. */
  readonly foldSql: (column: string) => string;
  /** Whether values add up (totals of separate rows are comparable and explainable). */
  readonly additive: boolean;
}

const ADD: Combiner = {
  combine: (a, b) => a + b,
  combineSql: (a, b) => `${a} + ${b}`,
  foldSql: (c) => `sum(${c})`,
  additive: true,
};
const LEAST: Combiner = {
  combine: (a, b) => (a < b ? a : b),
  combineSql: (a, b) => `LEAST(${a}, ${b})`,
  foldSql: (c) => `min(${c})`,
  additive: false,
};
const GREATEST: Combiner = {
  combine: (a, b) => (a > b ? a : b),
  combineSql: (a, b) => `GREATEST(${a}, ${b})`,
  foldSql: (c) => `max(${c})`,
  additive: false,
};

/** One aggregation's combine rule. */
export interface AggregationRule extends Combiner {
  /**
   * The part of a `PartialAggregate` the aggregation combines; undefined for
   * count_distinct, whose partials are sets of members (merged by union).
   */
  readonly part?: keyof PartialAggregate;
}

/** The rule of a numeric aggregation, which always combines one part of a partial. */
export interface NumericRule extends AggregationRule {
  readonly part: keyof PartialAggregate;
}

/**
 * Every aggregation's rule. count_distinct's combine applies to its counts
 * where the members are not kept (the hours of the API's top totals): the
 * largest count, a lower bound.
 */
export const AGGREGATION_RULES: Readonly<
  Record<Numeric, NumericRule> & Record<"count_distinct", AggregationRule>
> = {
  sum: { ...ADD, part: "sum" },
  count: { ...ADD, part: "count" },
  min: { ...LEAST, part: "min" },
  max: { ...GREATEST, part: "max" },
  count_distinct: { ...GREATEST },
};

/** How values of an aggregation not listed (an unknown metric type) fold: as sums. */
const DEFAULT_FOLD: Combiner = ADD;

/** Merges two partial values of a numeric aggregation. */
export function combine(aggregation: Numeric, a: number, b: number): number {
  return AGGREGATION_RULES[aggregation].combine(a, b);
}

/** The SQL expression that merges a stored value with an incoming one (upserts). */
export function combineSql(aggregation: Numeric): string {
  return AGGREGATION_RULES[aggregation].combineSql("target.value", "EXCLUDED.value");
}

/** The part of a `PartialAggregate` that a numeric aggregation combines. */
export function partialValue(aggregation: Numeric, p: PartialAggregate): number {
  return p[AGGREGATION_RULES[aggregation].part];
}

/** Whether values of the aggregation add up (sum and count). */
export function isAdditive(aggregation: Aggregation): boolean {
  return AGGREGATION_RULES[aggregation].additive;
}

/**
 * An SQL expression folding `column` in a GROUP BY by the aggregation that
 * the SQL text expression `aggregation` names at run time; a name that is not
 * an aggregation folds as a sum.
 *
 * @example
 * foldCaseSql("$5::text", "value")
 * // CASE $5::text WHEN 'min' THEN min(value) WHEN 'max' THEN max(value)
 * //   WHEN 'count_distinct' THEN max(value) ELSE sum(value) END
 */
export function foldCaseSql(aggregation: string, column: string): string {
  const otherwise = DEFAULT_FOLD.foldSql(column);
  const branches = Object.entries(AGGREGATION_RULES)
    .map(([name, rule]) => [name, rule.foldSql(column)])
    .filter(([, fold]) => fold !== otherwise)
    .map(([name, fold]) => ` WHEN '${name}' THEN ${fold}`);
  return `CASE ${aggregation}${branches.join("")} ELSE ${otherwise} END`;
}

/** Partial results of one metric in one bucket (window or hour): key → value or members. */
export class GroupAccumulator {
  readonly values = new Map<string, number>();
  readonly members = new Map<string, Set<string>>();

  constructor(readonly metric: CompiledMetric) {}

  /** Adds a row the caller already knows the metric accepts. */
  add(row: MetricRow): void {
    this.#put(row);
  }

  /**
   * Adds `partial.count` rows at once, all equal to `row` in every field the
   * metric reads except the aggregated value, which `partial` summarises. The
   * result is the same as adding those rows one by one. The caller already
   * knows the metric accepts `row`; a partial of no rows adds nothing.
   */
  addPartial(row: MetricRow, partial: PartialAggregate): void {
    if (partial.count > 0) this.#put(row, partial);
  }

  /** One row (`partial` undefined) or a summary of equal rows into the row's group. */
  #put(row: MetricRow, partial?: PartialAggregate): void {
    const m = this.metric;
    const key = m.key(row);
    if (m.aggregation === "count_distinct") {
      let set = this.members.get(key);
      if (!set) this.members.set(key, set = new Set());
      set.add(m.member(row));
      return;
    }
    const v = partial ? partialValue(m.aggregation, partial) : m.value(row);
    const prev = this.values.get(key);
    this.values.set(key, prev === undefined ? v : combine(m.aggregation, prev, v));
  }

  /** Final values: key → number (distinct count for count_distinct). */
  results(): Map<string, number> {
    if (this.metric.aggregation !== "count_distinct") return this.values;
    const out = new Map<string, number>();
    for (const [k, s] of this.members) out.set(k, s.size);
    return out;
  }

  get size(): number {
    return this.metric.aggregation === "count_distinct" ? this.members.size : this.values.size;
  }
}
