/**
 * Who may call a mutating route. With `api.token` set: `Authorization:
 * Bearer <token>`, compared in constant time by Hono's bearer-auth (401 when
 * missing or wrong, 400 for a malformed header, per RFC 6750). With no token:
 * only loopback clients (403 otherwise). The client address is the
 * connection's, from `Deno.serve`'s handler info passed as Hono's env
 * (`app.fetch(req, info)`); tests pass the same shape as the third argument of
 * `app.request`. A request without that info (no connection known) is treated
 * as remote: refusing is the safe default.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bearerAuth } from "hono/bearer-auth";
import { getConnInfo } from "hono/deno";
import { UserError } from "../errors.ts";

/** The remote address of the connection, or undefined if none is known. */
export function remoteAddress(c: Context): string | undefined {
  const env = c.env as { remoteAddr?: { hostname?: string } } | undefined;
  if (!env?.remoteAddr?.hostname) return undefined;
  return getConnInfo(c).remote.address;
}

/** 127.0.0.0/8, ::1 and IPv4-mapped loopback. */
export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.toLowerCase().replace(/^\[|\]$/g, "");
  if (a === "::1" || a === "0:0:0:0:0:0:0:1") return true;
  const v4 = a.startsWith("::ffff:") ? a.slice(7) : a;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** The guard in front of every mutating route. */
export function writeGuard(token: string | undefined): MiddlewareHandler {
  if (token) {
    return bearerAuth({
      token,
      noAuthenticationHeader: { message: { error: "Authorization: missing bearer token" } },
      invalidAuthenticationHeader: {
        message: { error: "Authorization: expected `Bearer <token>`" },
      },
      invalidToken: { message: { error: "Authorization: wrong token" } },
    });
  }
  return async (c, next) => {
    const addr = remoteAddress(c);
    if (!isLoopback(addr)) {
      throw new UserError(
        `no api.token is configured (API_TOKEN), so changes are only accepted from loopback; ` +
          `this request came from ${addr ?? "an unknown address"}`,
        { status: 403 },
      );
    }
    await next();
  };
}
