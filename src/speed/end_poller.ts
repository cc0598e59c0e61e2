/**
 * How far the source's partitions go, read now and then: how many partitions
 * the topic has (recorded in `speed_topics` once it changes) and, for the
 * owned ones, an end that the next flushes compare with the lake's durable
 * offset, so a quiet, fully consumed partition keeps counting as complete
 * (src/core/completeness.ts). A failure only delays completeness; the next
 * poll tries again.
 */
import type { SpeedPartition } from "./partition.ts";
import { recordTopic } from "./sink.ts";
import type { LayerDeps } from "./types.ts";

/** How often the ends are read: the idle timeout, at most 5 s. */
const END_POLL_MAX_MS = 5_000;

export class EndPoller {
  #polling = false;
  /** Partitions of the topic as last recorded in speed_topics. */
  #topicPartitions = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    readonly d: Pick<LayerDeps, "db" | "topic" | "clock" | "source" | "log">,
    readonly parts: ReadonlyMap<number, SpeedPartition>,
    readonly stopping: () => boolean,
  ) {}

  /** Polls once now, then every `idleTimeoutMs` (at most 5 s) until `stop`. */
  async start(idleTimeoutMs: number): Promise<void> {
    await this.poll();
    this.#timer = setInterval(() => void this.poll(), Math.min(END_POLL_MAX_MS, idleTimeoutMs));
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  async poll(): Promise<void> {
    if (this.#polling || this.stopping()) return;
    this.#polling = true;
    const d = this.d;
    try {
      const at = d.clock();
      const ends = await d.source.endOffsets();
      if (ends.size > 0 && ends.size !== this.#topicPartitions) {
        await recordTopic(d.db, d.topic, ends.size);
        this.#topicPartitions = ends.size;
      }
      for (const [p, end] of ends) this.parts.get(p)?.sawEnd(end, at);
    } catch (error) {
      d.log.debug("could not read the end of the source's partitions", { error });
    } finally {
      this.#polling = false;
    }
  }
}
