/**
 * The quota rule: a user is over quota in an hour when their usage (bytes of
 * all their devices in that hour) is strictly greater than their hourly quota.
 * Usage equal to the quota is not a breach.
 */

export interface QuotaBreach {
  readonly email: string;
  readonly usage: number;
  readonly quota: number;
}

/**
 * Users whose usage exceeds their quota, sorted by email. An email without a
 * quota (no metadata) is never reported: it has no limit to exceed.
 *
 * @example
 * quotaBreaches(new Map([["a@x", 11]]), new Map([["a@x", 10]])) // [{ email: "a@x", usage: 11, quota: 10 }]
 */
export function quotaBreaches(
  usageByEmail: ReadonlyMap<string, number>,
  quotaByEmail: ReadonlyMap<string, number>,
): QuotaBreach[] {
  const out: QuotaBreach[] = [];
  for (const [email, usage] of usageByEmail) {
    const quota = quotaByEmail.get(email);
    if (quota !== undefined && usage > quota) out.push({ email, usage, quota });
  }
  return out.sort((a, b) => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0));
}

/**
 * The hourly quota of each email. Devices sharing an email share one quota:
 * the largest declared for any of them (the most generous reading of the data).
 */
export function quotasByEmail(
  users: Iterable<{ readonly email: string; readonly quota: number }>,
): Map<string, number> {
  const out = new Map<string, number>();
  for (const u of users) {
    const prev = out.get(u.email);
    if (prev === undefined || u.quota > prev) out.set(u.email, u.quota);
  }
  return out;
}
