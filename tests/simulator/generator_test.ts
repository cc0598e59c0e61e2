import assert from "node:assert/strict";
import { createGenerator, type GeneratorOptions } from "../../src/simulator/generator.ts";
import { MALFORMED_KINDS } from "../../src/simulator/malformed.ts";
import { keyPartition, murmur2 } from "../../src/simulator/murmur2.ts";
import { antennaId, DEFAULT_APPS, deviceId } from "../../src/simulator/ids.ts";
import { validateMessage } from "../../src/core/validate.ts";
import type { SchemaPlan } from "../../src/config/plan.ts";

const START = Date.UTC(2026, 10, 28, 10);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SCHEMA: SchemaPlan = {
  maxPayloadBytes: 65_536,
  minTimestampMs: Date.UTC(2000, 0, 1),
  maxFutureMs: 3_600_000,
  maxAppLength: 64,
};
const decoder = new TextDecoder();

function take(opts: GeneratorOptions, n: number) {
  const gen = createGenerator(opts);
  return Array.from({ length: n }, () => gen.next());
}

Deno.test("createGenerator() gives the same bytes for the same seed", () => {
  const opts = { seed: 7, startMs: START, rate: 100, lateShare: 0.1, malformedShare: 0.05 };
  const a = take(opts, 3_000);
  const b = take(opts, 3_000);
  assert.deepEqual(a, b);
});

Deno.test("createGenerator() gives a different sequence for another seed", () => {
  const a = take({ seed: 1, startMs: START }, 200).map((i) => decoder.decode(i.value));
  const b = take({ seed: 2, startMs: START }, 200).map((i) => decoder.decode(i.value));
  assert.notDeepEqual(a, b);
});

Deno.test("createGenerator() emits valid events in the wire format, keyed by device id", () => {
  const devices = 20, antennas = 5;
  const items = take({ seed: 42, startMs: START, rate: 100, devices, antennas }, 5_000);
  const deviceIds = new Set(Array.from({ length: devices }, (_, i) => deviceId(i)));
  const antennaIds = new Set(Array.from({ length: antennas }, (_, i) => antennaId(i)));
  for (const item of items) {
    assert.ok(item.event && !item.malformed);
    const text = decoder.decode(item.value);
    const o = JSON.parse(text);
    assert.deepEqual(Object.keys(o), ["bytes", "timestamp", "app", "id", "antenna_id"]);
    assert.deepEqual(o, item.event);
    assert.equal(text, JSON.stringify(item.event));
    assert.ok(Number.isSafeInteger(o.bytes) && o.bytes >= 1 && o.bytes <= 40_000, text);
    assert.ok(Number.isInteger(o.timestamp), text);
    assert.ok(DEFAULT_APPS.includes(o.app), text);
    assert.match(o.id, UUID);
    assert.match(o.antenna_id, UUID);
    assert.ok(deviceIds.has(o.id) && antennaIds.has(o.antenna_id), text);
    assert.equal(item.key, o.id);
    assert.deepEqual(validateMessage(item.value, SCHEMA, START), { ok: true, event: item.event });
  }
  // Every device and app shows up in 5 000 events.
  assert.equal(new Set(items.map((i) => i.key)).size, devices);
  assert.equal(new Set(items.map((i) => i.event!.app)).size, DEFAULT_APPS.length);
});

Deno.test("createGenerator() advances event time at `rate` per second from startMs", () => {
  const items = take({ seed: 3, startMs: START, rate: 100 }, 1_000);
  items.forEach((item, i) => {
    assert.equal(item.event!.timestamp, Math.floor((START + i * 10) / 1000));
  });
  // One hour at 100/s is 360 000 events: the last one is in the hour's last second.
  const gen = createGenerator({ seed: 3, startMs: START, rate: 100 });
  let last;
  for (let i = 0; i < 360_000; i++) last = gen.next();
  assert.equal(last!.event!.timestamp, START / 1000 + 3599);
});

Deno.test("createGenerator() uses the injected clock without startMs", () => {
  const gen = createGenerator({ seed: 3, now: () => 1_800_000_000_123 });
  assert.equal(gen.next().event!.timestamp, 1_800_000_000);
});

Deno.test("createGenerator() honours lateShare and malformedShare and produces every malformed kind", () => {
  const n = 40_000, maxLatenessMs = 30_000;
  const items = take(
    { seed: 9, startMs: START, rate: 100, lateShare: 0.1, malformedShare: 0.05, maxLatenessMs },
    n,
  );
  const late = items.filter((i) => i.late).length;
  const malformed = items.filter((i) => i.malformed).length;
  assert.ok(Math.abs(late / n - 0.1) < 0.01, `late share ${late / n}`);
  assert.ok(Math.abs(malformed / n - 0.05) < 0.01, `malformed share ${malformed / n}`);
  const kinds = new Set(items.map((i) => i.malformed).filter((k) => k !== undefined));
  assert.deepEqual([...kinds].sort(), [...MALFORMED_KINDS].sort());
  items.forEach((item, i) => {
    const slotS = (START + i * 10) / 1000;
    if (item.late) {
      assert.ok(item.event!.timestamp <= Math.floor(slotS), "late is in the past");
      assert.ok(item.event!.timestamp >= Math.floor(slotS - maxLatenessMs / 1000) - 1);
    }
    if (item.malformed) {
      assert.equal(item.event, undefined);
      assert.ok(deviceIdPattern.test(item.key));
    }
  });
});

const deviceIdPattern = /^00000000-0000-0000-0000-[0-9a-f]{12}$/;

Deno.test("every malformed item is rejected by the validator with its own reason", () => {
  const items = take({ seed: 5, startMs: START, rate: 100, malformedShare: 1 }, 11 * 12);
  for (const item of items) {
    const v = validateMessage(item.value, SCHEMA, START);
    assert.equal(v.ok, false, decoder.decode(item.value));
    if (!v.ok) assert.equal(v.reason, item.malformed, decoder.decode(item.value).slice(0, 200));
  }
});

Deno.test("createGenerator() rejects impossible options", () => {
  assert.throws(() => createGenerator({ devices: 0 }), RangeError);
  assert.throws(() => createGenerator({ startMs: START, rate: 0 }), RangeError);
  assert.throws(() => createGenerator({ lateShare: 0.7, malformedShare: 0.5 }), RangeError);
});

Deno.test("murmur2() matches Kafka's Utils.murmur2 test vectors", () => {
  const cases: [string, number][] = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    ["abc", 479470107],
  ];
  const enc = new TextEncoder();
  for (const [s, h] of cases) assert.equal(murmur2(enc.encode(s)), h, s);
  const p = keyPartition(enc.encode(deviceId(0)), 3);
  assert.ok(p >= 0 && p < 3);
});

Deno.test("deviceId() and antennaId() count in decimal like the original system's provisioner", () => {
  assert.equal(deviceId(0), "00000000-0000-0000-0000-000000000001");
  assert.equal(deviceId(9), "00000000-0000-0000-0000-000000000010", "the tenth device");
  assert.equal(deviceId(19), "00000000-0000-0000-0000-000000000020");
  assert.equal(deviceId(99_999), "00000000-0000-0000-0000-000000100000");
  assert.equal(antennaId(0), "00000000-0000-0000-0001-000000000000");
  assert.equal(antennaId(10), "00000000-0000-0000-0001-000000000010");
  assert.throws(() => deviceId(1e12), RangeError);
});
