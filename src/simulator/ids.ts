/**
 * Deterministic ids of the simulator's antennas and devices, shared by the
 * generator and the provisioner's seed so user metadata matches the events.
 * Devices look like the original system's `00000000-0000-0000-0000-000000000001`;
 * antennas live in their own range so the two never collide.
 */

/** Id of device `i` (0-based): `00000000-0000-0000-0000-<i+1 as 12 hex digits>`. */
export function deviceId(i: number): string {
  return "00000000-0000-0000-0000-" + (i + 1).toString(16).padStart(12, "0");
}

/** Id of antenna `j` (0-based): `00000000-0000-0000-0001-<j as 12 hex digits>`. */
export function antennaId(j: number): string {
  return "00000000-0000-0000-0001-" + j.toString(16).padStart(12, "0");
}

/** The default apps, as in the original system, and a few more. */
export const DEFAULT_APPS: readonly string[] = [
  "SKYPE",
  "FACEBOOK",
  "WHATSAPP",
  "FACETIME",
  "TELEGRAM",
  "INSTAGRAM",
  "YOUTUBE",
  "NETFLIX",
  "SPOTIFY",
  "TIKTOK",
];
