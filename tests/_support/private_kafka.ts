/**
 * Reading back what `simulate` produced to a private broker (the simulator's
 * broker outage and late start tests): the expected messages recomputed from
 * the generator's deterministic sequence, and every message on a topic, per
 * partition in offset order. Event times are left out of both: in live mode
 * they follow the wall clock.
 */
import { Kafka, logLevel } from "kafkajs";
import { delay } from "../../src/async/delay.ts";
import { createGenerator, type GeneratorOptions, keyPartition } from "../../src/simulator/mod.ts";

const decoder = new TextDecoder();
/** The message without its event time. */
const timeless = (value: string) => value.replace(/"timestamp":\d+,?/, "");

/** What each partition must hold: the first `n` generated messages keyed to it, in order. */
export function expectedPerPartition(
  sim: GeneratorOptions,
  n: number,
  partitions: number,
): string[][] {
  const gen = createGenerator({ ...sim, now: () => 0 });
  const out: string[][] = Array.from({ length: partitions }, () => []);
  for (let i = 0; i < n; i++) {
    const item = gen.next();
    const p = keyPartition(new TextEncoder().encode(item.key), partitions);
    out[p].push(`${item.key} ${timeless(decoder.decode(item.value))}`);
  }
  return out;
}

/** Messages on `topic` so far. */
export async function producedCount(brokers: string[], topic: string): Promise<number> {
  const admin = new Kafka({ brokers, logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((s, o) => s + Number(o.high), 0);
  } finally {
    await admin.disconnect();
  }
}

/** Every message of `topic`, per partition in offset order. */
export async function readAll(
  brokers: string[],
  topic: string,
  partitions: number,
): Promise<string[][]> {
  const kafka = new Kafka({ brokers, logLevel: logLevel.NOTHING });
  const total = await producedCount(brokers, topic);
  const out: string[][] = Array.from({ length: partitions }, () => []);
  let seen = 0;
  const consumer = kafka.consumer({ groupId: `${topic}-reader` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: ({ partition, message }) => {
        out[partition].push(`${message.key} ${timeless(message.value!.toString())}`);
        seen++;
        return Promise.resolve();
      },
    });
    const deadline = Date.now() + 60_000;
    while (seen < total && Date.now() < deadline) await delay(200);
  } finally {
    await consumer.disconnect();
  }
  return out;
}
