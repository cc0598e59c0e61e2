/**
 * The one place a kafkajs client is built: shared connection settings and the
 * bridge from kafkajs' logger to ours, so every Kafka line is structured like
 * the rest of the process.
 */
import { Kafka, type LogEntry, logLevel } from "kafkajs";
import { log } from "../log.ts";
import "../kafkajs_timer_fix.ts";

const kafkaLog = log.child({ component: "kafka" });

/**
 * kafkajs logs every join, pause and resume at INFO; those are ours to report,
 * so only its warnings and errors come through (LOG_LEVEL=debug shows INFO too).
 */
function logCreator(quietRetries: boolean) {
  return (_level: logLevel) => ({ namespace, level, log: entry }: LogEntry) => {
    const { message, timestamp: _ts, logger: _logger, ...extra } = entry as unknown as {
      message: string;
      timestamp: string;
      logger?: string;
    } & Record<string, unknown>;
    const fields = { ns: namespace, ...extra };
    // kafkajs puts stack traces in `stack`; they are noise in one-line logs.
    delete (fields as Record<string, unknown>).stack;
    // kafkajs logs every failed connection and error response at ERROR before
    // retrying it; a retried failure is a warning for us (the caller gets the
    // final error). The producer's "limiting retries" warning
    // is a choice we made (fail rather than hang when Kafka is gone).
    const retried = namespace === "Connection" || namespace === "BrokerPool";
    // A caller that retries past kafkajs reports the outage itself (producer.ts).
    if (quietRetries && level <= logLevel.WARN && level > logLevel.NOTHING) {
      return kafkaLog.debug(message, fields);
    }
    const accepted = message.startsWith("Limiting retries for the idempotent producer");
    if (level === logLevel.ERROR && !retried) kafkaLog.error(message, fields);
    else if ((level === logLevel.WARN && !accepted) || level === logLevel.ERROR) {
      kafkaLog.warn(message, fields);
    } else kafkaLog.debug(message, fields);
  };
}

export interface ClientOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
  /**
   * kafkajs' warnings and errors go to the debug log: for a caller that
   * retries what kafkajs gives up and logs the outage itself. Default false.
   */
  readonly quietRetries?: boolean;
}

/** A kafkajs client for `brokers`, logging through src/log.ts. */
export function createClient(opts: ClientOptions): Kafka {
  return new Kafka({
    brokers: [...opts.brokers],
    clientId: opts.clientId,
    logLevel: logLevel.INFO,
    logCreator: logCreator(opts.quietRetries ?? false),
    // Fail fast on a wrong address instead of kafkajs' default ~30 s of retries.
    connectionTimeout: 3_000,
    retry: { initialRetryTime: 200, retries: 5 },
  });
}

/** Kafka error types that mean "the group is rebalancing / this generation is over". */
export function isRebalanceError(e: unknown): boolean {
  const type = (e as { type?: string } | null)?.type;
  return type === "REBALANCE_IN_PROGRESS" || type === "ILLEGAL_GENERATION" ||
    type === "UNKNOWN_MEMBER_ID" || type === "NOT_COORDINATOR_FOR_GROUP" ||
    type === "FENCED_INSTANCE_ID";
}
