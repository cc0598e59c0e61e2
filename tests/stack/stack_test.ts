/**
 * The local stack as the other tests rely on it: a kafkajs round trip through a
 * consumer group with committed offsets, PostgreSQL with fresh databases, and the
 * GCS emulator through @google-cloud/storage (including generation
 * preconditions, which the lake uses to publish files atomically).
 */
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { Storage } from "@google-cloud/storage";
import { countJUnit, summaryLine } from "../_support/junit.ts";
import {
  freshDatabase,
  freshTopic,
  gcsEndpoint,
  kafkaBrokers,
  uniqueName,
} from "../_support/services.ts";

Deno.test({
  name: "stack: kafkajs produces, consumes in a group and commits offsets on Kafka",
  // kafkajs keeps timers and sockets past disconnect.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const topic = await freshTopic("stack", 3);
    const group = uniqueName("stack-group");
    const kafka = new Kafka({ brokers: kafkaBrokers(), logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    // disconnect() waits for the in-flight fetch, which long-polls up to
    // maxWaitTimeInMs (5 s by default) on an idle topic.
    const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 250 });
    const admin = kafka.admin();
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: `k${i % 7}`, value: `v${i}` }));
    try {
      await producer.connect();
      await producer.send({ topic, messages: sent });

      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const received: string[] = [];
      const done = Promise.withResolvers<void>();
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          received.push(message.value!.toString());
          await consumer.commitOffsets([
            { topic, partition, offset: (BigInt(message.offset) + 1n).toString() },
          ]);
          if (received.length === sent.length) done.resolve();
        },
      });
      const timer = setTimeout(
        () => done.reject(new Error(`got ${received.length}/${sent.length} messages`)),
        30_000,
      );
      await done.promise.finally(() => clearTimeout(timer));
      assert.deepEqual(received.toSorted(), sent.map((m) => m.value).toSorted());

      await admin.connect();
      const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const total = committed.partitions.reduce((n, p) => n + Number(p.offset), 0);
      assert.equal(total, sent.length, "committed offsets add up to the messages consumed");
    } finally {
      await consumer.disconnect().catch(() => {});
      await producer.disconnect().catch(() => {});
      await admin.disconnect().catch(() => {});
    }
  },
});

Deno.test("stack: PostgreSQL answers and freshDatabase gives an empty database", async () => {
  const db = await freshDatabase("stack");
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ db: string; n: number }[]>`
      select current_database() as db,
             (select count(*)::int from information_schema.tables
               where table_schema = 'public') as n`;
    assert.equal(row.db, db.name);
    assert.equal(row.n, 0);
    await sql`create table t (id int primary key)`;
    await sql`insert into t values (1), (2)`;
    const [{ c }] = await sql<{ c: number }[]>`select count(*)::int as c from t`;
    assert.equal(c, 2);
  } finally {
    await sql.end();
    await db.drop();
  }
});

Deno.test({
  name: "stack: @google-cloud/storage round trip on the GCS emulator",
  // The client's HTTP agent keeps sockets alive after the test.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const storage = new Storage({ apiEndpoint: gcsEndpoint(), projectId: "test" });
    const [bucket] = await storage.createBucket(uniqueName("stack").replaceAll("_", "-"));
    const body = new TextEncoder().encode("hello lake\n");
    const name = "year=2026/month=11/day=28/hour=01/p0-0-9.parquet";

    await bucket.file(name).save(body, {
      resumable: false,
      preconditionOpts: { ifGenerationMatch: 0 },
    });
    // Publishing the same file twice must be refused: this is what makes lake
    // uploads "whole or not at all, never duplicated".
    await assert.rejects(
      bucket.file(name).save(body, {
        resumable: false,
        preconditionOpts: { ifGenerationMatch: 0 },
      }),
      (e: { code?: number }) => e.code === 412,
    );
    await bucket.file("other/x.txt").save("x", { resumable: false });

    const [files] = await bucket.getFiles({ prefix: "year=2026/" });
    assert.deepEqual(files.map((f) => f.name), [name]);

    const [downloaded] = await bucket.file(name).download();
    assert.equal(new TextDecoder().decode(downloaded), "hello lake\n");

    await bucket.file(name).delete();
    const [exists] = await bucket.file(name).exists();
    assert.equal(exists, false);
    await bucket.file("other/x.txt").delete();
    await bucket.delete();
  },
});

Deno.test("countJUnit() counts tests, not steps, from a Deno JUnit report", () => {
  const xml = `<testsuites name="deno test" tests="6" failures="3">
    <testsuite name="./a_test.ts" tests="6">
      <testcase name="pass" classname="./a_test.ts"></testcase>
      <testcase name="fail" classname="./a_test.ts"><failure message="x">x</failure></testcase>
      <testcase name="ign" classname="./a_test.ts"><skipped/></testcase>
      <testcase name="a &gt; b" classname="./a_test.ts"></testcase>
      <testcase name="steps" classname="./a_test.ts"><failure message="1 step">.</failure></testcase>
      <testcase name="steps &gt; s1" classname="./a_test.ts"></testcase>
      <testcase name="steps &gt; s2" classname="./a_test.ts"><failure message="s2">s2</failure></testcase>
    </testsuite>
  </testsuites>`;
  const counts = countJUnit(xml);
  assert.deepEqual(counts, { passed: 2, failed: 2, skipped: 1 });
  assert.equal(summaryLine(counts), "2 passed, 2 failed, 1 skipped");
  assert.equal(summaryLine({ passed: 3, failed: 0, skipped: 0 }), "3 passed, 0 failed");
});
