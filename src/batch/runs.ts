/**
 * The run history in `batch_runs`, and the per-hour lock it carries: a unique
 * partial index allows one `running` row per hour, so two processes can never
 * both run an hour, on PostgreSQL and on PGlite alike. A running row holds a
 * lease the job keeps renewing; a row whose lease has passed belongs to a
 * process that died, and the next claimant marks it failed and takes over.
 * A row also names its process (`holder`, host:pid): one whose process is
 * known to be gone (same host, no such pid) is taken over at once.
 */
import type { Queryable } from "../db/db.ts";
import type { RunHolder } from "../holder.ts";
import { HourBusyError } from "./errors.ts";
import { sqlHour } from "./hours.ts";
import type { ListRunsOptions, RunRecord, RunStatus, Trigger } from "./types.ts";

interface RunRow {
  run_id: number | string;
  hour: Date;
  trigger: Trigger;
  status: RunStatus;
  queued_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  rows_read: number | null;
  files_read: number | null;
  rows_written: number | null;
  unknown_devices: number | null;
  unknown_rows: number | null;
  breaches: number | null;
  note: string | null;
  error: string | null;
  lake_complete: boolean | null;
  console_url: string | null;
}

const opt = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

function toRecord(r: RunRow): RunRecord {
  return {
    runId: String(r.run_id),
    hour: r.hour.getTime(),
    trigger: r.trigger,
    status: r.status,
    queuedAt: r.queued_at.getTime(),
    startedAt: r.started_at?.getTime(),
    finishedAt: r.finished_at?.getTime(),
    rowsRead: opt(r.rows_read),
    filesRead: opt(r.files_read),
    rowsWritten: opt(r.rows_written),
    unknownDevices: opt(r.unknown_devices),
    unknownRows: opt(r.unknown_rows),
    breaches: opt(r.breaches),
    note: opt(r.note),
    error: opt(r.error),
    lakeComplete: opt(r.lake_complete),
    consoleUrl: opt(r.console_url),
  };
}

/**
 * Marks running rows of `hour` as failed whose lease has passed or whose
 * process is gone (their process died before finishing).
 */
async function expireStale(db: Queryable, hour: number, holder?: RunHolder): Promise<void> {
  await db.query(
    `UPDATE batch_runs SET status = 'failed', finished_at = now(), lease_until = NULL,
       error = 'lease expired: the process running it stopped before finishing'
     WHERE hour = $1::timestamp AND status = 'running' AND lease_until < now()`,
    [sqlHour(hour)],
  );
  if (!holder) return;
  const held = await db.query<{ run_id: number; holder: string }>(
    `SELECT run_id, holder FROM batch_runs
     WHERE hour = $1::timestamp AND status = 'running' AND holder IS NOT NULL`,
    [sqlHour(hour)],
  );
  for (const r of held) {
    if (!holder.gone(r.holder)) continue;
    await db.query(
      `UPDATE batch_runs SET status = 'failed', finished_at = now(), lease_until = NULL,
         error = $2
       WHERE run_id = $1 AND status = 'running'`,
      [r.run_id, `the process running it (${r.holder}) is gone: it stopped before finishing`],
    );
  }
}

async function runningId(db: Queryable, hour: number): Promise<string | undefined> {
  const rows = await db.query<{ run_id: number }>(
    "SELECT run_id FROM batch_runs WHERE hour = $1::timestamp AND status = 'running'",
    [sqlHour(hour)],
  );
  return rows.length ? String(rows[0].run_id) : undefined;
}

/** Records a refused run (status conflict) and returns the error to throw. */
async function refuse(
  db: Queryable,
  hour: number,
  trigger: Trigger,
  existingRunId?: string,
): Promise<HourBusyError> {
  const holder = existingRunId ?? await runningId(db, hour);
  const err = new HourBusyError(hour, holder);
  await db.query(
    `INSERT INTO batch_runs (hour, trigger, status, started_at, finished_at, error)
     VALUES ($1::timestamp, $2, 'conflict', now(), now(), $3)`,
    [sqlHour(hour), trigger, err.message],
  );
  return err;
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string })?.code === "23505";
}

/** Starts a new running run of `hour`, or throws `HourBusyError` (recorded as a conflict run). */
export async function claimNew(
  db: Queryable,
  hour: number,
  trigger: Trigger,
  leaseMs: number,
  holder?: RunHolder,
): Promise<string> {
  await expireStale(db, hour, holder);
  const rows = await db.query<{ run_id: number }>(
    `INSERT INTO batch_runs (hour, trigger, status, started_at, lease_until, holder)
     VALUES ($1::timestamp, $2, 'running', now(), now() + $3::bigint * interval '1 millisecond',
       $4)
     ON CONFLICT (hour) WHERE status = 'running' DO NOTHING
     RETURNING run_id`,
    [sqlHour(hour), trigger, leaseMs, holder?.id ?? null],
  );
  if (rows.length) return String(rows[0].run_id);
  throw await refuse(db, hour, trigger);
}

/** Records queued runs; returns their ids in the order of `hours`. */
export async function enqueue(db: Queryable, hours: number[], trigger: Trigger): Promise<string[]> {
  const rows = await db.query<{ run_id: number; hour: Date }>(
    `INSERT INTO batch_runs (hour, trigger, status)
     SELECT h::timestamp, $2, 'queued' FROM unnest($1::text[]) WITH ORDINALITY AS u(h, n)
     ORDER BY n
     RETURNING run_id, hour`,
    // ISO text: postgres.js has no serializer for arrays of Date; the cast to
    // TIMESTAMP keeps the UTC wall clock.
    [hours.map((h) => new Date(h).toISOString()), trigger],
  );
  const ids = rows.map((r) => String(r.run_id));
  return ids.sort((a, b) => Number(a) - Number(b));
}

/** Turns a queued run into a running one, or marks it conflict and throws `HourBusyError`. */
export async function claimQueued(
  db: Queryable,
  runId: string,
  hour: number,
  leaseMs: number,
  holder?: RunHolder,
): Promise<void> {
  await expireStale(db, hour, holder);
  let claimed = false;
  try {
    const rows = await db.query(
      `UPDATE batch_runs SET status = 'running', started_at = now(),
         lease_until = now() + $2::bigint * interval '1 millisecond', holder = $3
       WHERE run_id = $1 AND status = 'queued'
       RETURNING run_id`,
      [runId, leaseMs, holder?.id ?? null],
    );
    claimed = rows.length > 0;
    if (!claimed) throw new Error(`run ${runId} is no longer queued`);
  } catch (err) {
    if (!isUniqueViolation(err)) throw err;
  }
  if (claimed) return;
  const busy = new HourBusyError(hour, await runningId(db, hour));
  await db.query(
    `UPDATE batch_runs SET status = 'conflict', started_at = now(), finished_at = now(), error = $2
     WHERE run_id = $1`,
    [runId, busy.message],
  );
  throw busy;
}

/** Records whether the lake held all of the run's hour when the run started reading it. */
export async function markLakeComplete(
  db: Queryable,
  runId: string,
  complete: boolean | undefined,
): Promise<void> {
  await db.query("UPDATE batch_runs SET lake_complete = $2 WHERE run_id = $1", [
    runId,
    complete ?? null,
  ]);
}

/**
 * Records where a run runs off this process (a Dataproc batch's console
 * page), as soon as it is known: a run that then hangs or fails can be
 * followed there. Only while the run is running: a late answer never
 * touches a row another process took over.
 */
export async function recordConsoleUrl(db: Queryable, runId: string, url: string): Promise<void> {
  await db.query(
    "UPDATE batch_runs SET console_url = $2 WHERE run_id = $1 AND status = 'running'",
    [runId, url],
  );
}

/** Extends the lease of a running run; false when the run lost it (expired and taken over). */
export async function renewLease(db: Queryable, runId: string, leaseMs: number): Promise<boolean> {
  const rows = await db.query(
    `UPDATE batch_runs SET lease_until = now() + $2::bigint * interval '1 millisecond'
     WHERE run_id = $1 AND status = 'running' RETURNING run_id`,
    [runId, leaseMs],
  );
  return rows.length > 0;
}

export interface RunStats {
  rowsRead: number;
  filesRead: number;
  rowsWritten: number;
  unknownDevices: number;
  unknownRows: number;
  breaches: number;
  note?: string;
  /** Recorded as soon as known (recordConsoleUrl); here for the run's summary. */
  consoleUrl?: string;
}

/** Ends a running run as succeeded (inside the job's write transaction). */
export async function markSucceeded(tx: Queryable, runId: string, s: RunStats): Promise<void> {
  await tx.query(
    `UPDATE batch_runs SET status = 'succeeded', finished_at = now(), lease_until = NULL,
       rows_read = $2, files_read = $3, rows_written = $4, unknown_devices = $5,
       unknown_rows = $6, breaches = $7, note = $8, error = NULL
     WHERE run_id = $1`,
    [
      runId,
      s.rowsRead,
      s.filesRead,
      s.rowsWritten,
      s.unknownDevices,
      s.unknownRows,
      s.breaches,
      s.note ?? null,
    ],
  );
}

/** Ends a running run as failed, keeping whatever was counted before the error. */
export async function markFailed(
  db: Queryable,
  runId: string,
  error: string,
  s: Partial<RunStats> = {},
): Promise<void> {
  await db.query(
    `UPDATE batch_runs SET status = 'failed', finished_at = now(), lease_until = NULL,
       rows_read = $3, files_read = $4, unknown_devices = $5, unknown_rows = $6, error = $2
     WHERE run_id = $1 AND status = 'running'`,
    [
      runId,
      error,
      s.rowsRead ?? null,
      s.filesRead ?? null,
      s.unknownDevices ?? null,
      s.unknownRows ?? null,
    ],
  );
}

const COLUMNS = `run_id, hour, trigger, status, queued_at, started_at, finished_at, rows_read,
  files_read, rows_written, unknown_devices, unknown_rows, breaches, note, error, lake_complete,
  console_url`;

export async function getRun(db: Queryable, runId: string): Promise<RunRecord | undefined> {
  if (!/^\d{1,18}$/.test(runId)) return undefined;
  const rows = await db.query<RunRow>(`SELECT ${COLUMNS} FROM batch_runs WHERE run_id = $1`, [
    runId,
  ]);
  return rows.length ? toRecord(rows[0]) : undefined;
}

export async function listRuns(db: Queryable, o: ListRunsOptions = {}): Promise<RunRecord[]> {
  const rows = await db.query<RunRow>(
    `SELECT ${COLUMNS} FROM batch_runs
     WHERE ($1::timestamp IS NULL OR hour = $1::timestamp)
       AND ($2::timestamp IS NULL OR hour >= $2::timestamp)
       AND ($3::timestamp IS NULL OR hour <= $3::timestamp)
       AND ($4::text IS NULL OR status = $4)
     ORDER BY run_id DESC LIMIT $5`,
    [
      o.hour === undefined ? null : sqlHour(o.hour),
      o.from === undefined ? null : sqlHour(o.from),
      o.to === undefined ? null : sqlHour(o.to),
      o.status ?? null,
      o.limit ?? 100,
    ],
  );
  return rows.map(toRecord);
}

/** Whether a run of `hour` is running now (any process), after expiring dead runs. */
export async function isRunning(
  db: Queryable,
  hour: number,
  holder?: RunHolder,
): Promise<string | undefined> {
  await expireStale(db, hour, holder);
  return await runningId(db, hour);
}

/** The newest run of each hour in [from, to]. */
export async function lastRuns(db: Queryable, from: number, to: number): Promise<RunRecord[]> {
  const rows = await db.query<RunRow>(
    `SELECT DISTINCT ON (hour) ${COLUMNS} FROM batch_runs
     WHERE hour >= $1::timestamp AND hour <= $2::timestamp
     ORDER BY hour, run_id DESC`,
    [sqlHour(from), sqlHour(to)],
  );
  return rows.map(toRecord);
}

/** Start of the newest hour in `batch_hours`. */
export async function lastCompletedHour(db: Queryable): Promise<number | undefined> {
  const rows = await db.query<{ hour: Date | null }>("SELECT max(hour) AS hour FROM batch_hours");
  return rows[0]?.hour?.getTime();
}

/** The first hour a succeeded run read lake rows of (a lake older than its change records). */
export async function firstReadHour(db: Queryable): Promise<number | undefined> {
  const rows = await db.query<{ read: Date | null }>(
    "SELECT min(hour) AS read FROM batch_runs WHERE status = 'succeeded' AND rows_read > 0",
  );
  return rows[0]?.read?.getTime();
}
