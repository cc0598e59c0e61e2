/**
 * The event-source port: what the speed layer reads from, declared beside its
 * consumer and implemented by src/kafka/ (createKafkaSource) and
 * src/simulator/ (createSimulatorSource); tests/_support/event_source_cases.ts
 * is the one contract suite both pass. Offsets are per partition; `commit` takes the *next*
 * offset to read, like Kafka. Delivery is at-least-once: after a restart or a
 * rebalance, messages from the last committed offset are delivered again.
 */

export interface SourceMessage {
  readonly partition: number;
  readonly offset: number;
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
}

export interface SourceBatch {
  readonly partition: number;
  /** In offset order. */
  readonly messages: readonly SourceMessage[];
  /** The partition's high watermark (next offset the broker will assign). */
  readonly highWatermark: number;
}

export interface SourceHandlers {
  /**
   * Called with each batch; the source waits for the promise before fetching
   * more of that partition (backpressure).
   */
  onBatch(batch: SourceBatch): Promise<void>;
  /**
   * Partitions assigned to this instance. May return the offset to start from
   * per partition (overriding the committed offset).
   */
  onAssign(partitions: readonly number[]): Promise<ReadonlyMap<number, number> | void>;
  /** Partitions taken away (rebalance or stop): flush what belongs to them. */
  onRevoke(partitions: readonly number[]): Promise<void>;
}

export interface EventSource {
  /** "kafka" or "simulator", for logs and /ready. */
  readonly kind: string;
  start(handlers: SourceHandlers): Promise<void>;
  /** Commits the next offset to read, per partition. */
  commit(offsets: ReadonlyMap<number, number>): Promise<void>;
  /** Stops fetching (a sink is down); `resume` starts again. */
  pause(): void;
  resume(): void;
  /** Messages not yet consumed, per assigned partition. */
  lag(): Promise<ReadonlyMap<number, number>>;
  /**
   * The end of the log of every partition of the topic, owned by this
   * instance or not (the next offset the broker will assign): how many
   * partitions the topic has, and whether a partition is fully consumed.
   */
  endOffsets(): Promise<ReadonlyMap<number, number>>;
  stop(): Promise<void>;
}

/** A message that failed validation, bound for the dead-letter topic. */
export interface DeadLetter {
  readonly partition: number;
  readonly offset: number;
  readonly key: Uint8Array | null;
  /** The original bytes, untouched. */
  readonly value: Uint8Array | null;
  readonly reason: string;
  readonly detail: string;
}

export interface DeadLetterSink {
  send(letters: readonly DeadLetter[]): Promise<void>;
  close(): Promise<void>;
}
