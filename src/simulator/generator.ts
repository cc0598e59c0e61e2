/**
 * The deterministic telemetry generator behind `simulate` and the in-process
 * simulator source. Pure: no I/O, the wall clock is injected, and the same
 * options give the same sequence of messages, so tests can recompute expected
 * totals from the items they produced.
 */
import { antennaId, DEFAULT_APPS, deviceId } from "./ids.ts";
import { type GeneratedItem, simulatedItem } from "./item.ts";
import { MALFORMED_KINDS } from "./malformed.ts";
import { createRandom } from "./prng.ts";

export interface GeneratorOptions {
  /** Seed of the pseudo-random sequence. Default 42. */
  readonly seed?: number;
  /** Number of devices (ids from ids.ts). Default 20. */
  readonly devices?: number;
  /** Number of antennas (ids from ids.ts). Default 5. */
  readonly antennas?: number;
  /** App names. Default DEFAULT_APPS. */
  readonly apps?: readonly string[];
  /**
   * Event time start, epoch ms. When set, event time is simulated: item `i`
   * stands at `startMs + i * 1000 / rate`, however fast items are pulled, so
   * past hours generate as fast as the consumer of the items can go. When
   * unset, event time is the wall clock (`now`). Default unset.
   */
  readonly startMs?: number;
  /** Items per second of event time when `startMs` is set (> 0). Default 100. */
  readonly rate?: number;
  /** Share (0..1) of items that are valid but late. Default 0. */
  readonly lateShare?: number;
  /** Largest lateness of a late item, ms (>= 1). Default 30 000. */
  readonly maxLatenessMs?: number;
  /** Share (0..1) of malformed items. Default 0. */
  readonly malformedShare?: number;
  /** Size limit the `oversized` kind is built to exceed. Default 65 536. */
  readonly maxPayloadBytes?: number;
  /** Chance per valid item that its device moves to another antenna. Default 0.001. */
  readonly moveShare?: number;
  /** Wall clock, epoch ms, used when `startMs` is unset. Default Date.now. */
  readonly now?: () => number;
}

export type { GeneratedItem } from "./item.ts";

export interface Generator {
  next(): GeneratedItem;
  /** Items generated so far. */
  readonly count: number;
}

/** The options with their defaults filled in. */
type Settings = Required<Omit<GeneratorOptions, "startMs">> & { readonly startMs?: number };

function withDefaults(opts: GeneratorOptions): Settings {
  return {
    seed: opts.seed ?? 42,
    devices: opts.devices ?? 20,
    antennas: opts.antennas ?? 5,
    apps: opts.apps ?? DEFAULT_APPS,
    startMs: opts.startMs,
    rate: opts.rate ?? 100,
    lateShare: opts.lateShare ?? 0,
    maxLatenessMs: opts.maxLatenessMs ?? 30_000,
    malformedShare: opts.malformedShare ?? 0,
    maxPayloadBytes: opts.maxPayloadBytes ?? 65_536,
    moveShare: opts.moveShare ?? 0.001,
    now: opts.now ?? Date.now,
  };
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new RangeError(message);
}

function checkSettings(o: Settings): void {
  const { devices, antennas, startMs, rate, lateShare, malformedShare } = o;
  check(
    Number.isInteger(devices) && devices >= 1,
    `devices must be a positive integer, got ${devices}`,
  );
  check(
    Number.isInteger(antennas) && antennas >= 1,
    `antennas must be a positive integer, got ${antennas}`,
  );
  check(o.apps.length >= 1, "apps must not be empty");
  check(
    startMs === undefined || Number.isFinite(startMs),
    `startMs must be finite, got ${startMs}`,
  );
  check(
    startMs === undefined || (Number.isFinite(rate) && rate > 0),
    `rate must be > 0 with startMs, got ${rate}`,
  );
  check(
    lateShare >= 0 && malformedShare >= 0 && lateShare + malformedShare <= 1,
    "lateShare + malformedShare must be within 0..1",
  );
  check(o.maxLatenessMs >= 1, `maxLatenessMs must be >= 1, got ${o.maxLatenessMs}`);
}

/**
 * `make(i)`, remembered: large fleets (the benchmark's 100 000 devices) are
 * named lazily, and the cache stops growing before it weighs on memory.
 */
function cachedIds(make: (i: number) => string): (i: number) => string {
  const cache = new Map<number, string>();
  return (i) => {
    let s = cache.get(i);
    if (s === undefined) {
      s = make(i);
      if (cache.size < 200_000) cache.set(i, s);
    }
    return s;
  };
}

/**
 * Creates a generator.
 *
 * @example
 * const gen = createGenerator({ seed: 7, startMs: Date.UTC(2026, 10, 28, 10), rate: 100 });
 * const first = gen.next(); // same bytes for seed 7, every run
 */
export function createGenerator(opts: GeneratorOptions = {}): Generator {
  const o = withDefaults(opts);
  checkSettings(o);
  const { devices, antennas, apps, startMs, rate, lateShare, maxLatenessMs } = o;
  const { malformedShare, maxPayloadBytes, moveShare, now } = o;
  const rng = createRandom(o.seed);
  // Devices start spread evenly over antennas; moves are drawn as we go.
  const home = new Int32Array(devices);
  for (let d = 0; d < devices; d++) home[d] = d % antennas;
  // Each app gets its own volume scale (0.5x..2x), so per-app totals differ.
  const scale = apps.map(() => 0.5 + 1.5 * rng.next());
  const appJson = apps.map((a) => JSON.stringify(a));
  const deviceName = cachedIds(deviceId);
  const antennaName = cachedIds(antennaId);
  let count = 0;
  let malformedCount = 0;

  function next(): GeneratedItem {
    const i = count++;
    const tMs = startMs === undefined ? now() : startMs + Math.floor((i * 1000) / rate);
    const d = rng.int(devices);
    if (rng.next() < moveShare) home[d] = rng.int(antennas);
    const a = rng.int(apps.length);
    // Log-uniform 100..20 000 bytes, scaled per app.
    const bytes = Math.max(1, Math.round(scale[a] * 100 * Math.pow(200, rng.next())));
    const r = rng.next();
    const lateness = 1 + rng.int(maxLatenessMs);
    const draw = {
      bytes,
      app: apps[a],
      appJson: appJson[a],
      id: deviceName(d),
      antenna: antennaName(home[d]),
      issueMs: tMs,
    };
    if (r < malformedShare) {
      const n = malformedCount++;
      const kind = MALFORMED_KINDS[n % MALFORMED_KINDS.length];
      const variant = Math.floor(n / MALFORMED_KINDS.length);
      return simulatedItem({
        ...draw,
        latenessMs: 0,
        malformed: { kind, variant },
        maxPayloadBytes,
      });
    }
    const late = r < malformedShare + lateShare;
    return simulatedItem({ ...draw, latenessMs: late ? lateness : 0, maxPayloadBytes });
  }

  return {
    next,
    get count() {
      return count;
    },
  };
}
