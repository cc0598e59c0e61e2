/**
 * What reloads of pipeline.yaml report, declared once: the count of reloads
 * by result and the generation of the active plan.
 */
import {
  type Counter,
  type Gauge,
  type Registry,
  registry as processRegistry,
} from "../metrics.ts";

export interface ConfigTelemetry {
  /** Labels: result (applied, rejected, refused, unchanged, failed). */
  readonly reloads: Counter;
  readonly generation: Gauge;
}

/** Registers (or finds) the config metrics in `registry`. */
export function configTelemetry(registry: Registry = processRegistry): ConfigTelemetry {
  return {
    reloads: registry.counter(
      "config_reloads_total",
      "Reloads of the pipeline file, by result: applied, rejected (invalid file), refused " +
        "(restart-only keys changed), unchanged (same plan), failed (a part could not apply it).",
    ),
    generation: registry.gauge(
      "config_generation",
      "Generation of the active plan: 1 at start, one more per applied reload.",
    ),
  };
}
