/**
 * The producer's outage retry: which kafkajs errors mean "the broker is not
 * there" (retried) and which mean "this request is wrong" (not), and the
 * bound: a broker that never comes gives one clear error after
 * `maxRetryTimeMs`, not a hang. (That nothing is lost or duplicated through a
 * real outage: tests/simulator/broker_outage_test.ts.)
 */
import assert from "node:assert/strict";
import { BrokerGoneError, createProducer, isUnreachable } from "../../src/kafka/producer.ts";

const kafkaError = (name: string, extra: Record<string, unknown> = {}) =>
  Object.assign(new Error(name), { name, ...extra });

Deno.test("isUnreachable() retries what an absent broker causes, also when kafkajs wraps it", () => {
  assert.ok(isUnreachable(kafkaError("KafkaJSConnectionError")));
  assert.ok(isUnreachable(kafkaError("KafkaJSRequestTimeoutError")));
  assert.ok(isUnreachable(kafkaError("KafkaJSProtocolError", { retriable: true })));
  // What `simulate` died of: kafkajs' last retry wrapping a refused connection.
  const wrapped = kafkaError("KafkaJSNonRetriableError", {
    cause: kafkaError("KafkaJSNumberOfRetriesExceeded", {
      cause: kafkaError("KafkaJSConnectionError"),
    }),
  });
  assert.ok(isUnreachable(wrapped));
});

Deno.test("isUnreachable() does not retry a request the broker refuses", () => {
  // e.g. OUT_OF_ORDER_SEQUENCE_NUMBER, MESSAGE_TOO_LARGE: retrying cannot help.
  assert.equal(isUnreachable(kafkaError("KafkaJSProtocolError", { retriable: false })), false);
  assert.equal(isUnreachable(kafkaError("KafkaJSNonRetriableError")), false);
  assert.equal(isUnreachable(new TypeError("bad")), false);
  assert.equal(isUnreachable(undefined), false);
});

Deno.test({
  name:
    "createProducer() with maxRetryTimeMs gives up on a broker that never comes, with one clear error",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // Nothing listens on port 1.
    await assert.rejects(
      createProducer({ brokers: ["127.0.0.1:1"], clientId: "gone", maxRetryTimeMs: 1_000 }),
      (e: unknown) => {
        assert.ok(e instanceof BrokerGoneError, String(e));
        assert.match(e.message, /Kafka stayed unreachable for 1 s .*ECONNREFUSED/);
        return true;
      },
    );
  },
});
