/**
 * A batched Kafka producer for the simulator, the dead-letter sink and tests:
 * acks from all in-sync replicas, idempotent (no duplicates from retries), no
 * compression (the CPU is the bottleneck on a 2-core box, not the network),
 * and Kafka's Java-compatible keyed partitioner so a device lands on the same
 * partition whichever client produced it.
 *
 * With `maxRetryTimeMs`, a producer outlives its broker: a request that
 * kafkajs gave up on because the broker is unreachable is sent again, with
 * backoff, until it is acknowledged or the broker has been gone that long.
 * It is the same request of the same idempotent producer (same producer id,
 * same sequence numbers, which kafkajs rolls back when a request fails), so
 * a batch the broker wrote before the connection broke is recognised as a
 * duplicate and not written twice, and nothing behind it is sent before it,
 * so each partition keeps its order.
 */
import { Buffer } from "node:buffer";
import { CompressionTypes, type Message, Partitioners } from "kafkajs";
import { retry } from "../async/retry.ts";
import { log } from "../log.ts";
import { createClient } from "./_client.ts";

export interface ProducerOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  /**
   * How long a send keeps retrying while the broker is unreachable, ms,
   * counted from the first failure of a request; then it rejects. 0 = only
   * kafkajs' own retries (about 10 s). Default 0.
   */
  readonly maxRetryTimeMs?: number;
  /** Aborting ends the retries of a waiting send (it rejects). Default: none. */
  readonly signal?: AbortSignal;
  /**
   * The outage retry to send through, instead of one of the producer's own
   * (then `maxRetryTimeMs` and `signal` are the retry's): a caller that also
   * waits for the broker before the producer exists (topic creation) shares
   * one, so an outage is reported in one pair of lines whichever step met it.
   * Default: `createOutageRetry(this)`.
   */
  readonly outageRetry?: OutageRetry;
}

/** A message to produce; strings are sent as UTF-8. */
export interface OutgoingMessage {
  readonly key: Uint8Array | string | null;
  readonly value: Uint8Array | string | null;
  /** Explicit partition; default: by key (murmur2), or spread when keyless. */
  readonly partition?: number;
  /** Kafka headers. */
  readonly headers?: Readonly<Record<string, string>>;
}

export interface Producer {
  /** Sends all messages (in chunks), resolving once every one is acknowledged. */
  send(topic: string, messages: readonly OutgoingMessage[]): Promise<void>;
  close(): Promise<void>;
}

/**
 * Payload bytes per produce request. Kafka rejects a record batch above the
 * topic's max.message.bytes (1 MiB by default); staying under it per request
 * keeps every partition's batch under it too.
 */
const CHUNK_BYTES = 768 * 1024;

const producerLog = log.child({ component: "producer" });

/** Error names of kafkajs that mean "the broker is not there (yet)", not "this request is wrong". */
const UNREACHABLE = new Set([
  "KafkaJSConnectionError",
  "KafkaJSConnectionClosedError",
  "KafkaJSRequestTimeoutError",
  "KafkaJSBrokerNotFound",
  "KafkaJSNoBrokerAvailableError",
  "KafkaJSMetadataNotLoaded",
  "KafkaJSTopicMetadataNotLoaded",
  "KafkaJSLockTimeout",
]);

/**
 * True when `error`, or an error it wraps, says the broker is unreachable or
 * not ready (a retriable protocol error such as NOT_LEADER while it starts).
 * kafkajs wraps the cause of its last retry as `cause`.
 */
export function isUnreachable(error: unknown): boolean {
  let e = error as { name?: string; retriable?: boolean; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 8; depth++, e = e.cause as typeof e) {
    if (e.name !== undefined && UNREACHABLE.has(e.name)) return true;
    if (e.name === "KafkaJSProtocolError" && e.retriable === true) return true;
  }
  return false;
}

/** Raised when the broker stayed away longer than `maxRetryTimeMs`. */
export class BrokerGoneError extends Error {
  constructor(maxRetryTimeMs: number, readonly lastError: unknown) {
    const last = lastError instanceof Error ? `${lastError.name}: ${lastError.message}` : lastError;
    super(
      `Kafka stayed unreachable for ${
        maxRetryTimeMs / 1000
      } s (the retry limit); last error: ${last}`,
    );
    this.name = "BrokerGoneError";
  }
}

/** What {@linkcode createOutageRetry} needs to know. */
export interface OutageRetryOptions {
  /** Named in the log line when the broker goes away. */
  readonly brokers: readonly string[];
  /** As {@linkcode ProducerOptions.maxRetryTimeMs}: 0 = one attempt. Default 0. */
  readonly maxRetryTimeMs?: number;
  /** Aborting ends a waiting call (it rejects with the reason). Default: none. */
  readonly signal?: AbortSignal;
}

/**
 * Runs `attempt` until it succeeds; while it fails because the broker is
 * unreachable, again with backoff for at most `maxRetryTimeMs` from its first
 * failure. Any other error is thrown at once.
 */
export interface OutageRetry {
  <T>(attempt: () => Promise<T>): Promise<T>;
  /** The bound it was made with; 0 = no retries of its own. */
  readonly maxRetryTimeMs: number;
}

/**
 * An outage retry. Logs one line when the broker goes away and one when it
 * is back, not one a retry, across every call made through it.
 *
 * @example
 * const outageRetry = createOutageRetry({ brokers, maxRetryTimeMs: 60_000 });
 * await outageRetry(() => ensureTopics({ brokers, topics }));
 * const producer = await createProducer({ brokers, clientId: "sim", outageRetry });
 */
export function createOutageRetry(opts: OutageRetryOptions): OutageRetry {
  const maxRetryTimeMs = opts.maxRetryTimeMs ?? 0;
  let downSince: number | undefined;
  const send = async <T>(attempt: () => Promise<T>): Promise<T> => {
    if (maxRetryTimeMs <= 0) return await attempt();
    // Aborted with the reason to give up: a fatal error or the time limit.
    const giveUp = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let lastError: unknown;
    const signal = opts.signal ? AbortSignal.any([opts.signal, giveUp.signal]) : giveUp.signal;
    const once = async () => {
      try {
        return await attempt();
      } catch (e) {
        if (!isUnreachable(e)) giveUp.abort(e);
        lastError = e;
        timer ??= setTimeout(
          () => giveUp.abort(new BrokerGoneError(maxRetryTimeMs, lastError)),
          maxRetryTimeMs,
        );
        throw e;
      }
    };
    try {
      const result = await retry(once, {
        signal,
        initialMs: 500,
        maxMs: 5_000,
        onError: (e) => {
          if (downSince !== undefined) return;
          downSince = Date.now();
          producerLog.warn("Kafka is unreachable: keeping the messages and retrying", {
            brokers: opts.brokers.join(","),
            maxRetryTimeMs,
            error: e instanceof Error ? e.message : String(e),
          });
        },
      });
      if (downSince !== undefined) {
        producerLog.info("Kafka is back: sending again", { downMs: Date.now() - downSince });
        downSince = undefined;
      }
      return result;
    } finally {
      clearTimeout(timer);
    }
  };
  return Object.assign(send, { maxRetryTimeMs });
}

/** Zero-copy view kafkajs accepts (it only treats real Buffers as raw bytes). */
export function toBuffer(v: Uint8Array | string | null): Buffer | string | null {
  if (v === null || typeof v === "string" || Buffer.isBuffer(v)) return v;
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

function sizeOf(v: Uint8Array | string | null): number {
  if (v === null) return 0;
  return typeof v === "string" ? v.length * 3 : v.byteLength;
}

/**
 * Connects a producer.
 *
 * @example
 * const p = await createProducer({ brokers: ["127.0.0.1:19092"], clientId: "sim" });
 * await p.send("devices", [{ key: "dev-1", value: '{"bytes":1}' }]);
 * await p.close();
 */
export async function createProducer(opts: ProducerOptions): Promise<Producer> {
  const outageRetry = opts.outageRetry ?? createOutageRetry(opts);
  // Our retry reports the outage in two lines; kafkajs' line a failed attempt is noise then.
  const kafka = createClient({ ...opts, quietRetries: outageRetry.maxRetryTimeMs > 0 });
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    // Idempotence keeps order only with one request in flight per connection.
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await outageRetry(() => producer.connect());
  return {
    async send(topic, messages) {
      let chunk: Message[] = [];
      let bytes = 0;
      const flush = async () => {
        if (chunk.length === 0) return;
        // A retry resends this very chunk: keyed messages land on the same
        // partitions with the same sequence numbers (a keyless one may not).
        const messages = chunk;
        await outageRetry(() =>
          producer.send({ topic, messages, acks: -1, compression: CompressionTypes.None })
        );
        chunk = [];
        bytes = 0;
      };
      for (const m of messages) {
        const size = sizeOf(m.key) + sizeOf(m.value) + 64;
        if (bytes + size > CHUNK_BYTES) await flush();
        chunk.push({
          key: toBuffer(m.key),
          value: toBuffer(m.value),
          partition: m.partition,
          headers: m.headers ? { ...m.headers } : undefined,
        });
        bytes += size;
      }
      await flush();
    },
    async close() {
      await producer.disconnect();
    },
  };
}
