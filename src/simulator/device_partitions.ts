/**
 * Which simulated devices live on which partition: a device's messages are
 * keyed by its id, so Kafka's keyed partitioner (murmur2.ts) puts all of them
 * on one partition. The replayable source draws a partition's devices from
 * this list, so its keys partition exactly as a real topic's would.
 */
import { deviceId as decimalDeviceId } from "./ids.ts";
import { keyPartition } from "./murmur2.ts";

const encoder = new TextEncoder();
let cached: {
  devices: number;
  partitions: number;
  deviceId: (i: number) => string;
  lists: readonly Int32Array[];
} | undefined;

/**
 * Device indexes (0-based, as in `deviceId`) per partition, ascending. Hashing
 * takes about 0.6 s per million devices, so the last answer is kept. `deviceId`
 * names the devices (default the current, decimal ids; ids.ts `idScheme`).
 *
 * @example devicesByPartition(20, 3)[0] // Int32Array of the devices keyed to partition 0
 */
export function devicesByPartition(
  devices: number,
  partitions: number,
  deviceId: (i: number) => string = decimalDeviceId,
): readonly Int32Array[] {
  if (
    cached && cached.devices === devices && cached.partitions === partitions &&
    cached.deviceId === deviceId
  ) {
    return cached.lists;
  }
  const of = new Int32Array(devices);
  const counts = new Array<number>(partitions).fill(0);
  for (let i = 0; i < devices; i++) {
    const p = keyPartition(encoder.encode(deviceId(i)), partitions);
    of[i] = p;
    counts[p]++;
  }
  const lists = counts.map((n) => new Int32Array(n));
  const fill = new Array<number>(partitions).fill(0);
  for (let i = 0; i < devices; i++) lists[of[i]][fill[of[i]]++] = i;
  cached = { devices, partitions, deviceId, lists };
  return lists;
}
