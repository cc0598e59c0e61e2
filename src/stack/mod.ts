/**
 * The local stack's front door: Kafka, PostgreSQL and a GCS emulator on fixed
 * loopback ports, installed on first use and run as detached daemons under
 * `.state/`. `stackUp()` is idempotent and cheap when everything already runs,
 * so the test runner calls it before every run.
 *
 * @example
 * ```ts
 * const { kafkaBrokers, pgUrl, gcsEndpoint } = await stackUp();
 * ```
 */
import { UserError } from "../errors.ts";
import { LOCK_FILE, STATE_DIR } from "./_paths.ts";
import type { Service, ServiceName, ServiceStatus } from "./_service.ts";
import { GCS_ENDPOINT, gcsService } from "./gcs.ts";
import { KAFKA_PORT, kafkaService } from "./kafka.ts";
import { PG_URL, postgresService } from "./postgres.ts";

export type { ServiceName, ServiceStatus };
export { REPO_ROOT, STATE_DIR } from "./_paths.ts";

export const SERVICE_NAMES: readonly ServiceName[] = ["kafka", "postgres", "gcs"];

/** Where clients reach the stack. */
export interface StackInfo {
  /** Comma-separated bootstrap brokers, e.g. `127.0.0.1:19092`. */
  readonly kafkaBrokers: string;
  /** Superuser URL, e.g. `postgres://postgres@127.0.0.1:15432/postgres`. */
  readonly pgUrl: string;
  /** fake-gcs-server base URL for `new Storage({ apiEndpoint })`. */
  readonly gcsEndpoint: string;
}

export const STACK_INFO: StackInfo = {
  kafkaBrokers: `127.0.0.1:${KAFKA_PORT}`,
  pgUrl: PG_URL,
  gcsEndpoint: GCS_ENDPOINT,
};

const SERVICES: Record<ServiceName, Service> = {
  kafka: kafkaService,
  postgres: postgresService,
  gcs: gcsService,
};

/** Validates service names from the command line; none means all. */
export function parseServices(names: readonly string[]): ServiceName[] {
  if (names.length === 0) return [...SERVICE_NAMES];
  for (const n of names) {
    if (!SERVICE_NAMES.includes(n as ServiceName)) {
      throw new UserError(`unknown service "${n}": expected one of ${SERVICE_NAMES.join(", ")}`);
    }
  }
  return [...new Set(names as ServiceName[])];
}

/**
 * Holds an exclusive lock on `.state/stack.lock` while `fn` runs, so concurrent
 * `up`/`down` calls (several engineers, parallel test runs) never race to
 * install or start the same daemon twice.
 */
async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  await Deno.mkdir(STATE_DIR, { recursive: true });
  const file = await Deno.open(LOCK_FILE, { create: true, write: true });
  try {
    await file.lock(true);
    return await fn();
  } finally {
    file.close();
  }
}

/** Runs `op` on each service in parallel; reports every failure, one line each. */
async function each(
  services: readonly ServiceName[],
  op: (s: Service) => Promise<void>,
): Promise<void> {
  const results = await Promise.allSettled(services.map((n) => op(SERVICES[n])));
  const failures = results.flatMap((r, i) =>
    r.status === "rejected" ? [{ name: services[i], error: r.reason as unknown }] : []
  );
  if (failures.length === 0) return;
  const onlyUser = failures.every((f) => f.error instanceof UserError);
  const message = failures.map((f) =>
    `${f.name}: ${f.error instanceof Error ? f.error.message : String(f.error)}`
  ).join("\n");
  throw onlyUser ? new UserError(message) : new Error(message);
}

/** Installs what is missing, starts what is stopped, and waits until all are usable. */
export async function stackUp(
  services: readonly ServiceName[] = SERVICE_NAMES,
): Promise<StackInfo> {
  await withLock(() => each(services, (s) => s.up()));
  return STACK_INFO;
}

/** Stops the services cleanly; their data and installs stay in `.state/`. */
export async function stackDown(services: readonly ServiceName[] = SERVICE_NAMES): Promise<void> {
  await withLock(() => each(services, (s) => s.down()));
}

/**
 * Stops the services and deletes their state (data, logs, Kafka jars), in one
 * locked step so a concurrent `stackUp` cannot restart them halfway. The next
 * `stackUp` installs and starts them from scratch.
 */
export async function stackReset(services: readonly ServiceName[] = SERVICE_NAMES): Promise<void> {
  await withLock(() =>
    each(services, async (s) => {
      await s.down();
      await s.wipe();
    })
  );
}

/** Each service's address and whether it is up (and usable). */
export function stackStatus(
  services: readonly ServiceName[] = SERVICE_NAMES,
): Promise<ServiceStatus[]> {
  return Promise.all(services.map((n) => SERVICES[n].status()));
}
