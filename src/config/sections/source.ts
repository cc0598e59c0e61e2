/**
 * `source`: where events come from, the Kafka topic or the built-in simulator.
 * Its fields, rules and compile step; the source is opened once, at start,
 * so none of its keys reloads live.
 */

import { DEFAULT_APPS } from "../../core/apps.ts";
import type { PipelineConfig } from "../types.gen.ts";
import { BROKER, TOPIC } from "./_fields.ts";
import {
  type Frozen,
  type LintRule,
  type ObjectSpec,
  restart,
  type Section,
} from "../spec_types.ts";

const SOURCE = "the source is opened once, at start";
const KAFKA = "the Kafka consumer, its topic and group are set up once, at start";
const SIMULATOR = "the simulator's timeline is set up once, at start";

const SPEC: ObjectSpec = {
  type: "object",
  typeName: "SourceConfig",
  description: "Where events come from.",
  fields: {
    kind: {
      type: "enum",
      reload: restart(SOURCE),
      description:
        "`kafka`: consume the topic. `simulator`: in-process generator, no Kafka needed.",
      values: ["kafka", "simulator"],
      default: "simulator",
    },
    kafka: {
      type: "object",
      description: "Kafka consumer settings (used when kind is `kafka`, and by `simulate`).",
      fields: {
        brokers: {
          type: "list",
          reload: restart(KAFKA),
          description: "Bootstrap brokers, host:port; a comma-separated string is accepted.",
          minItems: 1,
          default: ["127.0.0.1:9092"],
          example: "10.0.0.5:9092,10.0.0.6:9092",
          items: BROKER,
        },
        topic: {
          ...TOPIC,
          reload: restart(KAFKA),
          description: "Topic of device events.",
          default: "devices",
        },
        group: {
          type: "string",
          reload: restart(KAFKA),
          description: "Consumer group id.",
          default: "antenna-lambda",
        },
        client_id: {
          type: "string",
          reload: restart(KAFKA),
          description: "Kafka client id.",
          default: "antenna-lambda",
        },
        dead_letter_topic: {
          ...TOPIC,
          reload: restart(KAFKA),
          description: "Topic receiving rejected messages with their reason.",
          default: "devices.dlq",
        },
        create_topics: {
          type: "bool",
          reload: restart(KAFKA),
          description: "Create the topics when missing.",
          default: true,
        },
        partitions: {
          type: "int",
          reload: restart(KAFKA),
          description: "Partitions of topics this process creates.",
          default: 3,
          min: 1,
          max: 10_000,
        },
        from_beginning: {
          type: "bool",
          reload: restart(KAFKA),
          description: "A new consumer group starts at the oldest offset (else the newest).",
          default: true,
        },
        session_timeout: {
          type: "duration",
          reload: restart(KAFKA),
          description: "The broker drops this consumer from its group after this long without " +
            "a heartbeat and hands its partitions to another member (which replays from the " +
            "last commit); heartbeats go every third of it, at most every 3s. Raise it when " +
            "long pauses (a loaded VM, a slow flush) cause needless rebalances; the broker " +
            "accepts `group.min.session.timeout.ms` to `group.max.session.timeout.ms` " +
            "(by default 6s to 30m).",
          default: "30s",
          min: 6_000,
          example: "45s",
        },
      },
    },
    simulator: {
      type: "object",
      description: "The built-in event generator (kind `simulator`).",
      fields: {
        antennas: {
          type: "int",
          reload: restart(SIMULATOR),
          description: "Number of antennas.",
          default: 5,
          min: 1,
          max: 1_000_000,
        },
        devices: {
          type: "int",
          reload: restart(SIMULATOR),
          description: "Number of devices.",
          default: 20,
          min: 1,
          max: 10_000_000,
        },
        apps: {
          type: "list",
          reload: restart(SIMULATOR),
          description: "App names events are drawn from.",
          minItems: 1,
          unique: true,
          default: [...DEFAULT_APPS],
          items: { type: "string", description: "An app name." },
        },
        rate: {
          type: "number",
          reload: restart(SIMULATOR),
          description:
            "Events per second over all partitions (each device sends its equal share). " +
            "0 = as fast as possible: event times are spaced at a nominal 100 000 events/s, " +
            "never ahead of the wall clock, the first run starting `max_backlog` in the past, " +
            "so delivery is as fast as the speed layer consumes and the backlog grows.",
          default: 100,
          min: 0,
        },
        seed: {
          type: "int",
          reload: restart(SIMULATOR),
          description: "Seed of the deterministic generator.",
          default: 42,
          min: 0,
        },
        late_share: {
          type: "number",
          reload: restart(SIMULATOR),
          description: "Share (0..1) of events emitted late / out of order.",
          default: 0.05,
          min: 0,
          max: 1,
        },
        malformed_share: {
          type: "number",
          reload: restart(SIMULATOR),
          description: "Share (0..1) of malformed messages (to exercise the dead-letter path).",
          default: 0.01,
          min: 0,
          max: 1,
        },
        max_lateness: {
          type: "duration",
          reload: restart(SIMULATOR),
          description: "Largest delay of a late event.",
          default: "30s",
        },
        max_backlog: {
          type: "duration",
          reload: restart(SIMULATOR),
          description: "Longest downtime made up for. The simulator replays like a topic: " +
            "after a restart, the events it would have issued while the pipeline was down " +
            "are a backlog the speed layer catches up on. When the source starts with more " +
            "than this behind, the older part of the gap is skipped (and logged).",
          default: "1h",
        },
        history: {
          type: "duration",
          reload: restart(SIMULATOR),
          description: "On a database the simulator has never run against, it starts this " +
            "far in the past: the pipeline begins with a backlog of simulated history that " +
            "it catches up on (past hours batched at once, a dashboard with data from the " +
            "first minute). At most `max_backlog`; ignored with `rate: 0`.",
          default: "0s",
        },
      },
    },
  },
};

const RULES: readonly LintRule<PipelineConfig>[] = [
  {
    id: "distinct_topics",
    description: "The dead-letter topic differs from the event topic.",
    check(c, report) {
      if (c.source.kafka.dead_letter_topic === c.source.kafka.topic) {
        report("source.kafka.dead_letter_topic", "dead_letter_topic must differ from topic");
      }
    },
  },
  {
    id: "simulator_shares",
    description: "`late_share + malformed_share` is at most 1.",
    check(c, report) {
      const s = c.source.simulator;
      if (s.late_share + s.malformed_share > 1) {
        report(
          "source.simulator.malformed_share",
          "late_share + malformed_share must be at most 1",
        );
      }
    },
  },
  {
    id: "simulator_history",
    description: "`source.simulator.history` is at most `source.simulator.max_backlog`.",
    check(c, report) {
      const s = c.source.simulator;
      if (s.history > s.max_backlog) {
        report(
          "source.simulator.history",
          "history must be at most source.simulator.max_backlog, which caps any backlog",
        );
      }
    },
  },
];

function compile(c: PipelineConfig["source"]) {
  const k = c.kafka;
  const s = c.simulator;
  return {
    /** `kafka`: consume the topic. `simulator`: in-process generator, no Kafka. */
    kind: c.kind,
    kafka: {
      brokers: [...k.brokers],
      topic: k.topic,
      group: k.group,
      clientId: k.client_id,
      deadLetterTopic: k.dead_letter_topic,
      /** Create the topics if missing (partitions used when creating). */
      createTopics: k.create_topics,
      partitions: k.partitions,
      /** Where a new consumer group starts. */
      fromBeginning: k.from_beginning,
      /** Heartbeat deadline of the consumer group member, ms. */
      sessionTimeoutMs: k.session_timeout,
    },
    simulator: {
      antennas: s.antennas,
      devices: s.devices,
      apps: [...s.apps],
      /** Events per second; 0 = as fast as possible (a nominal rate, consumer-bound). */
      rate: s.rate,
      seed: s.seed,
      /** Share (0..1) of events emitted late / out of order. */
      lateShare: s.late_share,
      /** Share (0..1) of malformed messages. */
      malformedShare: s.malformed_share,
      /** Max lateness of a late event, ms. */
      maxLatenessMs: s.max_lateness,
      /** Longest backlog (downtime) caught up on at start, ms; older gaps are skipped. */
      maxBacklogMs: s.max_backlog,
      /** On a fresh database, the first event time is this far before the wall clock. */
      historyMs: s.history,
    },
  };
}

export type SourcePlan = Frozen<ReturnType<typeof compile>>;
export type KafkaSourcePlan = SourcePlan["kafka"];
export type SimulatorPlan = SourcePlan["simulator"];

export const source: Section<PipelineConfig["source"], ReturnType<typeof compile>> = {
  spec: SPEC,
  rules: RULES,
  compile,
};
