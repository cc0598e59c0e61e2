/**
 * The shape every local service (Kafka, PostgreSQL, fake-gcs-server, Spark) has, so
 * `mod.ts` can bring them up, down and report on them uniformly.
 */

export type ServiceName = "kafka" | "postgres" | "gcs" | "spark";

export interface ServiceStatus {
  readonly name: ServiceName;
  /** Where clients connect, e.g. `127.0.0.1:19092` or a URL. */
  readonly address: string;
  readonly running: boolean;
  readonly pid?: number;
  /** Why it is down or not ours (e.g. "not installed", "port taken by pid 123"). */
  readonly detail?: string;
}

export interface Service {
  readonly name: ServiceName;
  readonly address: string;
  /** Installs if needed, starts if stopped, waits until clients can use it. Idempotent. */
  up(): Promise<void>;
  /** Stops it cleanly if running; keeps its data. */
  down(): Promise<void>;
  status(): Promise<ServiceStatus>;
  /** Deletes its state (data, logs, downloaded jars); it must be stopped. */
  wipe(): Promise<void>;
}
