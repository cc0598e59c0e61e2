/**
 * A small seeded pseudo-random generator for the simulator. Math.random cannot
 * be seeded, and the simulator must replay the same sequence for a seed so
 * tests can recompute expected totals independently. `createRandomAt` gives
 * every (seed, partition, offset) its own stream, so a message can be derived
 * again from where it sits in its partition, without replaying those before.
 */

/** A seeded source of uniform numbers in [0, 1). */
export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
}

/** sfc32 over the given state words, warmed up. */
function sfc32(a: number, b: number, c: number, d: number): Random {
  const u32 = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  // Discard a few outputs: sfc32's first values correlate with the seed words.
  for (let i = 0; i < 12; i++) u32();
  const next = () => u32() / 4294967296;
  return { next, int: (n) => Math.floor(next() * n) };
}

/**
 * sfc32 (Chris Doty-Humphrey's Small Fast Counting generator), seeded through
 * splitmix32 so nearby seeds (42, 43) give unrelated streams. Period ~2^128,
 * passes PractRand; plenty for synthetic telemetry.
 *
 * @example createRandom(42).int(10) // always the same digit for seed 42
 */
export function createRandom(seed: number): Random {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) | 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  const a = splitmix(), b = splitmix(), c = splitmix(), d = splitmix();
  return sfc32(a, b, c, d);
}

/** murmur3's 32-bit finaliser: a bijection, so distinct words stay distinct. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The stream of message `offset` (an integer up to 2^53) of `partition` for
 * `seed`. Each input fills its own state word, so no two (seed, partition,
 * offset) share a stream.
 *
 * @example createRandomAt(42, 1, 1_000).next() // the same number in every run
 */
export function createRandomAt(seed: number, partition: number, offset: number): Random {
  const lo = offset >>> 0;
  const hi = Math.floor(offset / 4294967296) >>> 0;
  return sfc32(
    fmix32((seed >>> 0) ^ 0x2545f491),
    fmix32((partition >>> 0) ^ 0x9e3779b9),
    fmix32(lo ^ 0x85ebca6b),
    fmix32(hi ^ 0xc2b2ae35),
  );
}

/**
 * A 32-bit hash of three integers (each below 2^32), for decisions that are a
 * function of their inputs rather than a stream (where a device roams in a
 * period).
 */
export function hash3(a: number, b: number, c: number): number {
  let h = fmix32((a >>> 0) ^ 0x27d4eb2f);
  h = fmix32(((h ^ b) + 0x165667b1) | 0);
  return fmix32(((h ^ c) + 0x61c88647) | 0);
}
