/**
 * The replayable simulator's messages: the message at (partition, offset) is a
 * pure function of the generator parameters, the partition, the offset and the
 * offset's issue time (from the timeline, timeline.ts). Each message draws
 * from its own random stream, seeded by (seed, partition, offset), so asking
 * again after a restart gives the same key and value bytes without replaying
 * anything before it. The `simulate` CLI keeps the sequential generator.ts;
 * the shapes (apps' volume scales, log-uniform sizes, late and malformed
 * shares, malformed kinds) are the same.
 */
import { devicesByPartition } from "./device_partitions.ts";
import type { GeneratedItem } from "./item.ts";
import { idScheme } from "./ids.ts";
import { MALFORMED_KINDS } from "./malformed.ts";
import { simulatedItem } from "./item.ts";
import { createRandom, createRandomAt, hash3 } from "./prng.ts";

/**
 * Version of the derivation below. It is recorded with every timeline
 * segment: a change that alters any message's bytes must bump it, so offsets
 * issued before keep the old meaning in the records.
 */
export const MESSAGE_SCHEME = 2;
/** Schemes this version still derives: 1 (hex ids), 2 (decimal ids, ids.ts). */
const DERIVED_SCHEMES: readonly number[] = [1, 2];

/** What shapes messages; recorded (as JSON) with each timeline segment. */
export interface MessageParams {
  /** `MESSAGE_SCHEME` when the segment was recorded. */
  readonly scheme: number;
  readonly seed: number;
  /** Partitions keys are spread over (Kafka's keyed partitioner). */
  readonly partitions: number;
  readonly devices: number;
  readonly antennas: number;
  readonly apps: readonly string[];
  /** Share (0..1) of valid events whose timestamp is pushed into the past. */
  readonly lateShare: number;
  /** Share (0..1) of malformed messages. */
  readonly malformedShare: number;
  /** Largest lateness of a late event, ms (>= 1). */
  readonly maxLatenessMs: number;
  /** Size the `oversized` malformed kind exceeds. */
  readonly maxPayloadBytes: number;
}

/** A message of the replayable simulator. */
export interface IssuedMessage extends GeneratedItem {
  /** The key as UTF-8 bytes (shared between messages of a device: do not modify). */
  readonly keyBytes: Uint8Array;
}

/** Derives the message at (partition, offset) issued at `issueMs` (epoch ms). */
export type MessageAt = (partition: number, offset: number, issueMs: number) => IssuedMessage;

/** A device spends each period of this length at its home antenna or roams. */
export const ROAM_PERIOD_MS = 600_000;
/** Chance that a device is away from its home antenna in a period. */
export const ROAM_SHARE = 0.1;

const encoder = new TextEncoder();
const CACHE_MAX = 200_000;

/** Field-by-field equality of two parameter sets (JSONB does not keep key order). */
export function sameMessageParams(a: MessageParams, b: MessageParams): boolean {
  return a.scheme === b.scheme && a.seed === b.seed && a.partitions === b.partitions &&
    a.devices === b.devices && a.antennas === b.antennas && a.lateShare === b.lateShare &&
    a.malformedShare === b.malformedShare && a.maxLatenessMs === b.maxLatenessMs &&
    a.maxPayloadBytes === b.maxPayloadBytes && a.apps.length === b.apps.length &&
    a.apps.every((x, i) => x === b.apps[i]);
}

/**
 * The antenna device `d` is at during the roaming period holding `issueMs`:
 * its home (`d % antennas`) most of the time, another one for a `ROAM_SHARE`
 * of the periods. A function of time, not of a sequence, so replays agree.
 */
export function antennaOf(seed: number, antennas: number, d: number, issueMs: number): number {
  const home = d % antennas;
  if (antennas === 1) return home;
  const period = Math.floor(issueMs / ROAM_PERIOD_MS);
  const h = hash3(seed, d, period);
  if (h / 4294967296 >= ROAM_SHARE) return home;
  return (home + 1 + (hash3(seed ^ 0x5bd1e995, d, period) % (antennas - 1))) % antennas;
}

/**
 * Prepares the derivation for one parameter set (device lists per partition,
 * app scales, id caches).
 *
 * @example
 * const at = createMessageAt(params);
 * at(1, 1_000, Date.UTC(2026, 10, 28, 10)); // same bytes in every run
 */
export function createMessageAt(params: MessageParams): MessageAt {
  const { seed, antennas, apps, lateShare, malformedShare, maxPayloadBytes } = params;
  const maxLatenessMs = Math.max(1, params.maxLatenessMs);
  if (!DERIVED_SCHEMES.includes(params.scheme)) {
    throw new RangeError(
      `Timeline segment recorded with message scheme ${params.scheme}, this version derives ${
        DERIVED_SCHEMES.join(" and ")
      }`,
    );
  }
  // The segment's own ids: offsets issued under scheme 1 keep their hex ids.
  const { deviceId, antennaId } = idScheme(params.scheme);
  const lists = devicesByPartition(params.devices, params.partitions, deviceId);
  // Each app gets its own volume scale (0.5x..2x), so per-app totals differ.
  const scaleRng = createRandom(seed);
  const scale = apps.map(() => 0.5 + 1.5 * scaleRng.next());
  const appJson = apps.map((a) => JSON.stringify(a));
  const ids = new Map<number, { id: string; key: Uint8Array }>();
  const deviceOf = (d: number) => {
    let v = ids.get(d);
    if (v === undefined) {
      const id = deviceId(d);
      v = { id, key: encoder.encode(id) };
      if (ids.size < CACHE_MAX) ids.set(d, v);
    }
    return v;
  };
  const antennaIds = new Map<number, string>();
  const antennaName = (j: number) => {
    let s = antennaIds.get(j);
    if (s === undefined) {
      s = antennaId(j);
      if (antennaIds.size < CACHE_MAX) antennaIds.set(j, s);
    }
    return s;
  };

  return (partition, offset, issueMs) => {
    const devices = lists[partition];
    if (!devices || devices.length === 0) {
      throw new RangeError(`Partition ${partition} has no simulated devices to issue from`);
    }
    const rng = createRandomAt(seed, partition, offset);
    const d = devices[rng.int(devices.length)];
    const a = rng.int(apps.length);
    // Log-uniform 100..20 000 bytes, scaled per app.
    const bytes = Math.max(1, Math.round(scale[a] * 100 * Math.pow(200, rng.next())));
    const r = rng.next();
    const { id, key } = deviceOf(d);
    const antenna = antennaName(antennaOf(seed, antennas, d, issueMs));
    const draw = {
      bytes,
      app: apps[a],
      appJson: appJson[a],
      id,
      antenna,
      issueMs,
      maxPayloadBytes,
    };
    if (r < malformedShare) {
      const kind = MALFORMED_KINDS[rng.int(MALFORMED_KINDS.length)];
      const variant = rng.int(1 << 16);
      return {
        ...simulatedItem({ ...draw, latenessMs: 0, malformed: { kind, variant } }),
        keyBytes: key,
      };
    }
    const late = r < malformedShare + lateShare;
    const latenessMs = late ? 1 + rng.int(maxLatenessMs) : 0;
    return { ...simulatedItem({ ...draw, latenessMs }), keyBytes: key };
  };
}
