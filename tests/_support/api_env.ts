/**
 * Shared set-up of the API tests: a fresh PostgreSQL database with every
 * migration, a temporary local lake, the real batch runner, and two hours of
 * generated events: in the lake (for the batch layer) and as speed windows
 * (for the speed layer's tables), with 2% of the events missing from the
 * speed side, as late-dropped events would be.
 */
import { freshDatabase } from "./services.ts";
import { type Db, migrate, openDb } from "../../src/db/mod.ts";
import { type ObjectStore, openStore } from "../../src/lake/mod.ts";
import type { EventColumns } from "../../src/lake/mod.ts";
import { type BatchRunner, createBatchRunner } from "../../src/batch/mod.ts";
import { generateHour, insertUsers, type TestUser, writeLakeHour } from "./batch.ts";
import { deviceId } from "../../src/simulator/mod.ts";
import type { Plan } from "../../src/config/plan.ts";
import { createLogger } from "../../src/log.ts";
import { Registry } from "../../src/metrics.ts";
import { createApp } from "../../src/api/mod.ts";
import type { AppDeps } from "../../src/api/mod.ts";
import { apiTestPlan, insertSpeedRows, speedRowsOf } from "./api.ts";

/** First generated hour; H + 1 h is the second. */
export const H = Date.UTC(2026, 10, 28, 10);
export const HOUR = 3_600_000;
/** The tests' "now": both hours have ended. */
export const NOW = H + 3 * HOUR;
export const APPS = ["SKYPE", "FACEBOOK", "WHATSAPP", "TELEGRAM"];

export const LOOPBACK = { remoteAddr: { hostname: "127.0.0.1", port: 40000, transport: "tcp" } };
export const REMOTE = { remoteAddr: { hostname: "203.0.113.9", port: 40000, transport: "tcp" } };

export interface ApiEnv {
  db: Db;
  store: ObjectStore;
  plan: Plan;
  batch: BatchRunner;
  registry: Registry;
  /** Events of H and H + 1 h. */
  hours: EventColumns[];
  users: TestUser[];
  app(extra?: Partial<AppDeps>): ReturnType<typeof createApp>;
  done(): Promise<void>;
}

export const quiet = createLogger({ test: "api" });

/** Dropped from the speed side: every 50th event (the "late" ones). */
export const speedKeeps = (i: number) => i % 50 !== 0;

export async function apiEnv(o: { token?: string; speedData?: boolean } = {}): Promise<ApiEnv> {
  const fresh = await freshDatabase("api");
  const db = await openDb({ url: fresh.url, maxConnections: 4 });
  await migrate(db);
  const lakeDir = await Deno.makeTempDir({ prefix: "api_lake_" });
  const plan = apiTestPlan({ lakeUri: `file://${lakeDir}`, token: o.token });
  const store = openStore(plan.lake);
  const batch = createBatchRunner({ plan, db, store, log: quiet, clock: () => NOW });
  const registry = new Registry();

  // Two devices per user; every other user has a tiny quota, so breaches.
  const users: TestUser[] = Array.from({ length: 20 }, (_, i) => ({
    id: deviceId(i),
    name: `User ${i >> 1}`,
    email: `user${i >> 1}@example.com`,
    quota: (i >> 1) % 2 === 0 ? 1_000 : 1_000_000_000,
  }));
  await insertUsers(db, users);
  const hours = [H, H + HOUR].map((h, k) =>
    generateHour({
      hour: h,
      events: 2000,
      devices: users.map((u) => u.id),
      antennas: 4,
      apps: APPS,
      seed: 7 + k,
      partitions: 2,
    })
  );
  for (let k = 0; k < hours.length; k++) await writeLakeHour(store, H + k * HOUR, hours[k], 1);
  if (o.speedData !== false) {
    for (const c of hours) await insertSpeedRows(db, plan, speedRowsOf(c, speedKeeps));
  }
  return {
    db,
    store,
    plan,
    batch,
    registry,
    hours,
    users,
    app: (extra = {}) =>
      createApp({ plan, db, store, batch, registry, clock: () => NOW, log: quiet, ...extra }),
    async done() {
      await batch.idle();
      await db.close();
      await fresh.drop();
      await Deno.remove(lakeDir, { recursive: true });
    },
  };
}

/** Sum of bytes per key of one field over events (optionally only kept ones). */
export function totals(
  c: EventColumns,
  field: "antenna_id" | "app" | "id",
  keep: (i: number) => boolean = () => true,
): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < c.id.length; i++) {
    if (!keep(i)) continue;
    out.set(c[field][i], (out.get(c[field][i]) ?? 0) + c.bytes[i]);
  }
  return out;
}

/** GET a path and parse JSON, with the status. */
export async function getJson(
  app: ReturnType<typeof createApp>,
  path: string,
): Promise<{ status: number; body: Record<string, unknown> & { error: string } }> {
  const res = await app.request(path, {}, LOOPBACK);
  return { status: res.status, body: await res.json() };
}
