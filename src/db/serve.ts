/**
 * Serves the embedded database over the PostgreSQL wire protocol
 * (@electric-sql/pglite-socket) so psql, Superset and other tools connect to
 * it like to a server. The socket server queues client messages onto the one
 * PGlite session; here we hand it a view of PGlite whose `runExclusive` also
 * owns the session gate from a client's first message until PostgreSQL is
 * ready for a new query outside a transaction (ReadyForQuery 'I'), so
 * in-process statements run only between client protocol cycles, and reports
 * that span as "in transaction" so the server does not interleave another
 * client's messages into it.
 */
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import type { PGlite } from "@electric-sql/pglite";
import type { Db } from "./db.ts";
import { embeddedOf } from "./pglite.ts";
import { UserError } from "../errors.ts";
import { log } from "../log.ts";

export interface ServeOptions {
  /** Interface to bind, e.g. 127.0.0.1. */
  host: string;
  /** Port; 0 picks a free one (see the returned url). */
  port: number;
  /** Concurrent client connections. Default 16 (Superset keeps a pool). */
  maxConnections?: number;
}

export interface EmbeddedServer {
  /** postgres://postgres@host:port/postgres */
  readonly url: string;
  close(): Promise<void>;
}

/** A client that stops mid-cycle (no ReadyForQuery) loses the gate after this long. */
const STALLED_CYCLE_MS = 2_000;

/** ReadyForQuery is 'Z', length 5, status: 'I' idle, 'T' in transaction, 'E' failed. */
function readyStatus(tail: number[]): string | undefined {
  const n = tail.length;
  if (n < 6) return undefined;
  const ok = tail[n - 6] === 0x5a && tail[n - 5] === 0 && tail[n - 4] === 0 &&
    tail[n - 3] === 0 && tail[n - 2] === 5;
  return ok ? String.fromCharCode(tail[n - 1]) : undefined;
}

function gatedView(db: Db): { view: PGlite; reset(): void } {
  const handle = embeddedOf(db);
  if (!handle) throw new TypeError("serveEmbedded() needs an embedded (PGlite) database");
  const { pg, gate } = handle;
  let release: (() => void) | undefined;
  let stall: ReturnType<typeof setTimeout> | undefined;
  let tail: number[] = [];
  let terminated = false;

  const letGo = () => {
    if (stall !== undefined) clearTimeout(stall);
    stall = undefined;
    release?.();
    release = undefined;
  };
  const afterMessage = () => {
    const status = readyStatus(tail);
    if (status === "I" || terminated) return letGo();
    if (status === undefined) {
      // Mid extended-protocol cycle: keep the session unless the client stalls.
      if (stall !== undefined) clearTimeout(stall);
      stall = setTimeout(() => {
        log.debug("stalled wire-protocol cycle: releasing the session", { component: "db" });
        if (!pg.isInTransaction()) letGo();
      }, STALLED_CYCLE_MS);
    }
    // 'T' / 'E': the client's transaction holds the session until it ends.
  };

  const view = new Proxy(pg, {
    get(target, prop) {
      if (prop === "runExclusive") {
        return async <T>(fn: () => Promise<T>): Promise<T> => {
          if (!release) release = await gate.acquire();
          if (stall !== undefined) clearTimeout(stall);
          stall = undefined;
          tail = [];
          terminated = false;
          try {
            return await target.runExclusive(fn);
          } finally {
            afterMessage();
          }
        };
      }
      if (prop === "execProtocolRawStream") {
        return (message: Uint8Array, opts: { onRawData: (d: Uint8Array) => void }) => {
          terminated = message[0] === 0x58; // 'X': the client says goodbye, no reply
          return target.execProtocolRawStream(message, {
            ...opts,
            onRawData: (data: Uint8Array) => {
              tail = [...tail, ...data.subarray(Math.max(0, data.length - 6))].slice(-6);
              opts.onRawData(data);
            },
          });
        };
      }
      if (prop === "isInTransaction") {
        // The socket server keeps feeding the same client while this is true;
        // saying so mid-cycle too stops two clients' extended-protocol
        // messages (Parse/Bind/Execute/Sync) from interleaving.
        return () => release !== undefined || target.isInTransaction();
      }
      if (prop === "exec") {
        // Used by the socket server to roll back a disconnected client's transaction.
        return async (query: string) => {
          const r = await target.exec(query);
          if (!target.isInTransaction()) letGo();
          return r;
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { view, reset: letGo };
}

/** Serves an embedded `Db` over the PostgreSQL wire protocol. */
export async function serveEmbedded(db: Db, opts: ServeOptions): Promise<EmbeddedServer> {
  const gated = gatedView(db);
  const server = new PGLiteSocketServer({
    db: gated.view,
    host: opts.host,
    port: opts.port,
    maxConnections: opts.maxConnections ?? 16,
  });
  try {
    await server.start();
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "EADDRINUSE") {
      throw new UserError(
        `Cannot serve the embedded database on ${opts.host}:${opts.port}: the port is in use`,
        { cause: err },
      );
    }
    throw err;
  }
  // getServerConn() gives "host:port" with the real port when port was 0.
  const url = `postgres://postgres@${server.getServerConn()}/postgres`;
  log.info("embedded database served over the PostgreSQL wire protocol", {
    component: "db",
    url,
  });
  return {
    url,
    async close() {
      await server.stop();
      gated.reset(); // a client cut off mid-cycle must not keep the session
    },
  };
}
