/**
 * A batched Kafka producer for the simulator, the dead-letter sink and tests:
 * acks from all in-sync replicas, idempotent (no duplicates from retries), no
 * compression (the CPU is the bottleneck on a 2-core box, not the network),
 * and Kafka's Java-compatible keyed partitioner so a device lands on the same
 * partition whichever client produced it.
 */
import { Buffer } from "node:buffer";
import { CompressionTypes, type Message, Partitioners } from "kafkajs";
import { createClient } from "./_client.ts";

export interface ProducerOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
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
  const kafka = createClient(opts);
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    // Idempotence keeps order only with one request in flight per connection.
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  return {
    async send(topic, messages) {
      let chunk: Message[] = [];
      let bytes = 0;
      const flush = async () => {
        if (chunk.length === 0) return;
        await producer.send({
          topic,
          messages: chunk,
          acks: -1,
          compression: CompressionTypes.None,
        });
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
