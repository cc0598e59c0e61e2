/**
 * The webhook output: each alert POSTed as JSON to the configured URL, with
 * - `X-Antenna-Signature: sha256=<hex>`: HMAC-SHA256 of the exact body bytes
 *   with the configured secret (check it before trusting the body);
 * - `X-Antenna-Delivery: <id>`: stable per alert and output, the same on
 *   every retry: an idempotent receiver keeps the first and acknowledges the
 *   others;
 * - `X-Antenna-Attempt: <n>`.
 * Any 2xx is a delivery; anything else, a timeout or a network error is a
 * failed attempt, retried with backoff until the last.
 */
import type { AlertWebhookPlan } from "../config/plan.ts";
import { type AlertOutput, type Attempt, errorText } from "./output.ts";
import type { Claimed } from "./store.ts";
import { alertJson, deliveryId } from "./types.ts";

export const SIGNATURE_HEADER = "X-Antenna-Signature";
export const DELIVERY_ID_HEADER = "X-Antenna-Delivery";
export const ATTEMPT_HEADER = "X-Antenna-Attempt";

const encoder = new TextEncoder();

/** The bytes of a body, in a buffer of their own (WebCrypto wants an ArrayBuffer view). */
function bytesOf(body: string | Uint8Array): Uint8Array<ArrayBuffer> {
  return typeof body === "string" ? encoder.encode(body) : new Uint8Array(body);
}

async function hmacKey(secret: string): Promise<CryptoKey> {
  return await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

const hex = (b: ArrayBuffer) =>
  [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");

/**
 * The signature header's value for `body`.
 *
 * @example await signBody("s3cret", '{"email":"a@x"}') // "sha256=5c…"
 */
export async function signBody(secret: string, body: string | Uint8Array): Promise<string> {
  const bytes = bytesOf(body);
  return "sha256=" + hex(await crypto.subtle.sign("HMAC", await hmacKey(secret), bytes));
}

/** Whether `header` is the signature of `body` with `secret` (constant time). */
export async function verifySignature(
  secret: string,
  body: string | Uint8Array,
  header: string | null,
): Promise<boolean> {
  const m = /^sha256=([0-9a-f]{64})$/.exec(header ?? "");
  if (!m) return false;
  const sig = new Uint8Array(m[1].match(/../g)!.map((h) => parseInt(h, 16)));
  const bytes = bytesOf(body);
  return await crypto.subtle.verify("HMAC", await hmacKey(secret), sig, bytes);
}

export function createWebhookOutput(plan: AlertWebhookPlan): AlertOutput {
  const key = hmacKey(plan.secret);
  async function post(c: Claimed, signal: AbortSignal): Promise<Attempt> {
    const id = deliveryId(c.alert.id, "webhook");
    const body = JSON.stringify({ ...alertJson(c.alert), delivery_id: id });
    const bytes = encoder.encode(body);
    const signature = "sha256=" + hex(await crypto.subtle.sign("HMAC", await key, bytes));
    try {
      const res = await fetch(plan.url, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "User-Agent": "antenna-lambda-quota-alerts",
          [SIGNATURE_HEADER]: signature,
          [DELIVERY_ID_HEADER]: id,
          [ATTEMPT_HEADER]: String(c.attempt),
        },
        body: bytes,
        signal: AbortSignal.any([signal, AbortSignal.timeout(plan.timeoutMs)]),
      });
      await res.body?.cancel();
      if (res.ok) return { ok: true };
      return {
        ok: false,
        error: `HTTP ${res.status}${res.statusText ? " " + res.statusText : ""}`,
      };
    } catch (e) {
      const name = (e as { name?: string })?.name;
      if (name === "TimeoutError") {
        return { ok: false, error: `no answer within ${plan.timeoutMs} ms` };
      }
      return { ok: false, error: errorText(e) };
    }
  }
  return {
    name: "webhook",
    retry: plan.retry,
    batchSize: plan.concurrency,
    // Every claimed delivery is in flight at once, each bounded by the timeout.
    leaseMs: plan.timeoutMs + 30_000,
    failureInDoubt: false,
    async deliver(batch: readonly Claimed[], signal: AbortSignal): Promise<Attempt[]> {
      return await Promise.all(batch.map((c) => post(c, signal)));
    },
    async close() {},
  };
}
