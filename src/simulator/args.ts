/**
 * Flags of `simulate`, parsed and checked before anything connects. Pure: a
 * bad flag becomes one UserError naming the flag and the value.
 */
import { parseArgs as parseNodeArgs } from "node:util";
import { UserError } from "../errors.ts";
import { parseDuration } from "../config/units.ts";

/** Parsed flags; undefined = take the value from the plan. */
export interface SimulateArgs {
  readonly help: boolean;
  readonly config?: string;
  readonly brokers?: string[];
  readonly topic?: string;
  /** Events/s; 0 = as fast as possible ("max"). */
  readonly rate?: number;
  readonly count?: number;
  readonly durationMs?: number;
  readonly devices?: number;
  readonly antennas?: number;
  readonly seed?: number;
  readonly startMs?: number;
  readonly lateShare?: number;
  readonly maxLatenessMs?: number;
  readonly malformedShare?: number;
  readonly quiet: boolean;
  /** How long to keep retrying while Kafka is unreachable, ms. */
  readonly maxRetryTimeMs: number;
}

/** Default of --max-retry-time: long enough for a broker restart or a short outage. */
export const DEFAULT_MAX_RETRY_TIME_MS = 5 * 60_000;

export const USAGE = `Usage: simulate [options]

Produces simulated device-usage events to Kafka, keyed by device id:
  {"bytes":9082,"timestamp":1600545287,"app":"SKYPE","id":"<device uuid>","antenna_id":"<antenna uuid>"}
Defaults come from the pipeline file (source.kafka, source.simulator); flags override them.
Runs until --count/--duration is reached or Ctrl-C, then prints a JSON summary on stdout.

Options:
  --config FILE          pipeline file (default ./pipeline.yaml if present, else built-in defaults)
  --brokers H:P,...      Kafka brokers (default source.kafka.brokers)
  --topic NAME           topic (default source.kafka.topic); created with source.kafka.partitions if missing
  --rate N|max           events per second (default source.simulator.rate); max = as fast as possible.
                         With --start it is the pace of event time, and events are produced as fast as possible
  --count N              stop after N messages
  --duration D           stop after D (e.g. 10m, 1h30m); with --start, D of event time
  --devices N            number of devices (default source.simulator.devices)
  --antennas N           number of antennas (default source.simulator.antennas)
  --seed N               seed of the deterministic generator (default source.simulator.seed)
  --start TIME           simulate event time from TIME (ISO 8601, e.g. 2026-11-28T10:00Z) instead of the clock;
                         --start 2026-11-28T10:00Z --count 360000 --rate 100 makes one hour
  --late-share X         share (0..1) of late, out-of-order events (default source.simulator.late_share)
  --max-lateness D       largest lateness of a late event (default source.simulator.max_lateness)
  --malformed-share X    share (0..1) of malformed messages (default source.simulator.malformed_share)
  --max-retry-time D     while Kafka is unreachable (also when it is not up yet at start), keep the
                         messages and retry with backoff for at most D, then fail (default 5m);
                         nothing is lost or sent twice
  --quiet                no progress lines
  -h, --help             this help`;

function int(flag: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isSafeInteger(n) || n < min) {
    throw new UserError(`--${flag} must be an integer >= ${min}, got "${v}"`);
  }
  return n;
}

function share(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0 || n > 1) {
    throw new UserError(`--${flag} must be a number between 0 and 1, got "${v}"`);
  }
  return n;
}

function duration(flag: string, v: string | undefined, min: number): number | undefined {
  if (v === undefined) return undefined;
  const ms = parseDuration(v);
  if (ms === undefined || ms < min) {
    throw new UserError(`--${flag} must be a duration like 30s, 10m or 1h30m, got "${v}"`);
  }
  return ms;
}

/** The flags node's parseArgs accepts; all values are checked below. */
const OPTIONS = {
  help: { type: "boolean", short: "h" },
  config: { type: "string" },
  brokers: { type: "string" },
  topic: { type: "string" },
  rate: { type: "string" },
  count: { type: "string" },
  duration: { type: "string" },
  devices: { type: "string" },
  antennas: { type: "string" },
  seed: { type: "string" },
  start: { type: "string" },
  "late-share": { type: "string" },
  "max-lateness": { type: "string" },
  "malformed-share": { type: "string" },
  quiet: { type: "boolean" },
  "max-retry-time": { type: "string" },
} as const;

type Flags = Record<string, string | boolean | undefined>;

function readFlags(argv: readonly string[]): Flags {
  try {
    return parseNodeArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: OPTIONS,
    })
      .values;
  } catch (e) {
    // node's messages are already one clear line ("Unknown option '--x'...").
    throw new UserError(`${(e as Error).message} (see --help)`);
  }
}

function rateFlag(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (v === "max") return 0;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n <= 0) {
    throw new UserError(
      `--rate must be a positive number of events per second or "max", got "${v}"`,
    );
  }
  return n;
}

function startFlag(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  // A bare date-time would be read in the local zone: require an explicit one.
  if (
    !/^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2}))?$/.test(v) || Number.isNaN(Date.parse(v))
  ) {
    throw new UserError(
      `--start must be an ISO 8601 time with a zone, like 2026-11-28T10:00Z, got "${v}"`,
    );
  }
  return Date.parse(v);
}

function brokersFlag(v: string | undefined): string[] | undefined {
  const brokers = v?.split(",").map((b) => b.trim()).filter((b) => b !== "");
  if (brokers === undefined) return undefined;
  const bad = brokers.find((b) => !/^[^\s:,]+:\d{1,5}$/.test(b));
  if (brokers.length === 0 || bad !== undefined) {
    throw new UserError(`--brokers must be host:port[,host:port...], got "${v}"`);
  }
  return brokers;
}

function topicFlag(v: string | undefined): string | undefined {
  if (v !== undefined && !/^[A-Za-z0-9._-]{1,249}$/.test(v)) {
    throw new UserError(`--topic must be 1-249 letters, digits, ".", "_" or "-", got "${v}"`);
  }
  return v;
}

/**
 * Parses `simulate` flags.
 *
 * @example parseSimulateArgs(["--rate", "max", "--count", "1000"]).rate // 0
 */
export function parseSimulateArgs(argv: readonly string[]): SimulateArgs {
  const values = readFlags(argv);
  const s = (k: string) => values[k] as string | undefined;
  // Checked in this order, so with several bad flags the first named is the same every time.
  const rate = rateFlag(s("rate"));
  const startMs = startFlag(s("start"));
  const count = int("count", s("count"), 1);
  const durationMs = duration("duration", s("duration"), 1);
  if (count !== undefined && durationMs !== undefined) {
    throw new UserError("give either --count or --duration, not both");
  }
  return {
    help: values.help === true,
    config: s("config"),
    brokers: brokersFlag(s("brokers")),
    topic: topicFlag(s("topic")),
    rate,
    count,
    durationMs,
    devices: int("devices", s("devices"), 1),
    antennas: int("antennas", s("antennas"), 1),
    seed: int("seed", s("seed"), 0),
    startMs,
    lateShare: share("late-share", s("late-share")),
    maxLatenessMs: duration("max-lateness", s("max-lateness"), 1),
    malformedShare: share("malformed-share", s("malformed-share")),
    quiet: values.quiet === true,
    maxRetryTimeMs: duration("max-retry-time", s("max-retry-time"), 1) ??
      DEFAULT_MAX_RETRY_TIME_MS,
  };
}
