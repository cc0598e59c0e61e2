/**
 * The `Db` backend for embedded PostgreSQL (PGlite, WASM) persisted in a
 * folder, so the pipeline runs with no external service. PGlite is a single
 * backend session: every in-process statement or transaction takes the
 * session's gate, and the wire-protocol server (`serve.ts`) takes the same gate
 * for a socket client's whole protocol cycle or transaction, so an in-process
 * write can never land inside (and be rolled back with) a client's transaction.
 */
import { PGlite } from "@electric-sql/pglite";
import type { Db, Queryable, Row } from "./db.ts";
import { Gate } from "./_gate.ts";
import { OID, parseNumber, parseTimestamp, parseTimestamptz } from "./_types.ts";
import { log } from "../log.ts";
import { UserError } from "../errors.ts";

export interface PgliteOptions {
  /** Folder the database persists to (created if missing); undefined = in memory. */
  dir?: string;
}

/** What the wire-protocol server needs from an embedded `Db`. */
export interface Embedded {
  readonly pg: PGlite;
  readonly gate: Gate;
}

const embedded = new WeakMap<Db, Embedded>();

/** The PGlite instance and gate behind an embedded `Db` (undefined for postgres). */
export function embeddedOf(db: Db): Embedded | undefined {
  return embedded.get(db);
}

/** Waits for the gate, warning when a socket client holds it for long (open transaction). */
async function enter(gate: Gate): Promise<() => void> {
  const timer = setTimeout(() => {
    log.warn("embedded database busy: a wire-protocol client holds an open transaction", {
      component: "db",
    });
  }, 10_000);
  try {
    return await gate.acquire();
  } finally {
    clearTimeout(timer);
  }
}

function txQueryable(tx: {
  query<T>(q: string, p?: unknown[]): Promise<{ rows: T[] }>;
  exec(q: string): Promise<unknown>;
}): Queryable {
  return {
    async query<T = Row>(text: string, params: readonly unknown[] = []): Promise<T[]> {
      return (await tx.query<T>(text, [...params])).rows;
    },
    async exec(text: string): Promise<void> {
      await tx.exec(text);
    },
  };
}

/** Whether `pid` is a live Deno process (a reused pid of another program is not an owner). */
async function alive(pid: number): Promise<boolean> {
  try {
    const cmd = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmd.includes("deno");
  } catch {
    return false;
  }
}

/** The embedded folder is open in another live process (e.g. a running `start`). */
export class EmbeddedInUseError extends UserError {
  constructor(readonly dir: string, readonly pid: number) {
    super(
      `The embedded database ${dir} is in use by process ${pid}: stop it, or connect ` +
        `through the wire-protocol port it serves (--database-url postgres://postgres@HOST:PORT/postgres)`,
    );
    this.name = "EmbeddedInUseError";
  }
}

/** Embedded folders this process has open (a lock file with our own pid is otherwise stale). */
const openHere = new Set<string>();

/**
 * PGlite has no cross-process locking: two processes on one folder corrupt it.
 * A `<dir>.lock` file holding the owner's pid turns that into a clear refusal.
 */
async function takeDirLock(dir: string): Promise<() => Promise<void>> {
  const path = `${dir.replace(/\/+$/, "")}.lock`;
  const key = await Deno.realPath(dir);
  if (openHere.has(key)) {
    throw new UserError(`The embedded database ${dir} is already open in this process`);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await Deno.writeTextFile(path, String(Deno.pid), { createNew: true });
      openHere.add(key);
      return async () => {
        openHere.delete(key);
        await Deno.remove(path).catch(() => {});
      };
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
      const pid = Number((await Deno.readTextFile(path).catch(() => "")).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== Deno.pid && await alive(pid)) {
        throw new EmbeddedInUseError(dir, pid);
      }
      await Deno.remove(path).catch(() => {}); // stale: its owner is gone
    }
  }
  throw new UserError(`Cannot lock the embedded database ${dir} (${path})`);
}

/** Opens (creating if needed) an embedded database. */
export async function openPglite(opts: PgliteOptions = {}): Promise<Db> {
  let unlock = async () => {};
  if (opts.dir) {
    await Deno.mkdir(opts.dir, { recursive: true });
    unlock = await takeDirLock(opts.dir);
  }
  try {
    return await create(opts, unlock);
  } catch (err) {
    await unlock();
    throw err;
  }
}

async function create(opts: PgliteOptions, unlock: () => Promise<void>): Promise<Db> {
  const pg = await PGlite.create({
    dataDir: opts.dir,
    parsers: {
      [OID.int8]: parseNumber,
      [OID.numeric]: parseNumber,
      [OID.timestamp]: parseTimestamp,
      [OID.timestamptz]: parseTimestamptz,
    },
  });
  // Same session settings as the postgres backend: TIMESTAMP holds UTC.
  await pg.exec("SET TIME ZONE 'UTC'");
  const gate = new Gate();
  const direct = txQueryable(pg);
  const db: Db = {
    kind: "pglite",
    async query<T = Row>(text: string, params?: readonly unknown[]): Promise<T[]> {
      const release = await enter(gate);
      try {
        return await direct.query<T>(text, params);
      } finally {
        release();
      }
    },
    async exec(text: string): Promise<void> {
      const release = await enter(gate);
      try {
        await direct.exec(text);
      } finally {
        release();
      }
    },
    async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
      const release = await enter(gate);
      try {
        return await pg.transaction((tx) => fn(txQueryable(tx)));
      } finally {
        release();
      }
    },
    async close() {
      const release = await gate.acquire();
      try {
        if (!pg.closed) await pg.close();
      } finally {
        release();
        await unlock();
      }
    },
  };
  embedded.set(db, { pg, gate });
  return db;
}
