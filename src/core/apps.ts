/**
 * The apps of the original system's devices, and a few more: the default of
 * `source.simulator.apps`, here in the domain vocabulary so the config spec
 * and the simulator both take it from below rather than from each other.
 */

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
