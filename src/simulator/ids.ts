/**
 * Deterministic ids of the simulator's antennas and devices, shared by the
 * generator and the simulator's user seed (users.ts) so user metadata matches
 * the events. Devices count in decimal like the original system's provisioner:
 * `00000000-0000-0000-0000-000000000010` is the tenth device, so a
 * `user_metadata` written for the original system matches every device.
 * Antennas count the same way in their own range so the two never collide.
 */
export { DEFAULT_APPS } from "../core/apps.ts";

/** The last 12 digits of an id: `n` in decimal, zero-padded. */
function node(n: number): string {
  if (!Number.isSafeInteger(n) || n < 0 || n >= 1e12) {
    throw new RangeError(`a simulator id counts 0 to 999999999999, got ${n}`);
  }
  return String(n).padStart(12, "0");
}

/** Id of device `i` (0-based): `00000000-0000-0000-0000-<i+1 as 12 decimal digits>`. */
export function deviceId(i: number): string {
  return "00000000-0000-0000-0000-" + node(i + 1);
}

/** Id of antenna `j` (0-based): `00000000-0000-0000-0001-<j as 12 decimal digits>`. */
export function antennaId(j: number): string {
  return "00000000-0000-0000-0001-" + node(j);
}

/** How a message scheme (message_at.ts) names devices and antennas. */
export interface IdScheme {
  readonly deviceId: (i: number) => string;
  readonly antennaId: (j: number) => string;
}

/**
 * The ids of message scheme `scheme`: 1 counted in hex (the timeline segments
 * recorded before ids became decimal keep their messages), 2 and later in
 * decimal.
 */
export function idScheme(scheme: number): IdScheme {
  if (scheme >= 2) return { deviceId, antennaId };
  const hex = (n: number) => n.toString(16).padStart(12, "0");
  return {
    deviceId: (i) => "00000000-0000-0000-0000-" + hex(i + 1),
    antennaId: (j) => "00000000-0000-0000-0001-" + hex(j),
  };
}
