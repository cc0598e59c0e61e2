/**
 * `simulate`: produces simulated telemetry to Kafka. Flags override the
 * pipeline file's `source.kafka` and `source.simulator` sections; the run
 * ends at --count/--duration or on Ctrl-C/SIGTERM, and prints a JSON summary
 * on stdout (progress goes to the log on stderr).
 */
import { loadPlan } from "../config/mod.ts";
import { UserError } from "../errors.ts";
import { parseSimulateArgs, USAGE } from "../simulator/args.ts";
import { simulate } from "../simulator/simulate.ts";

/** Runs `simulate`; returns the exit code (2 = bad flags or config, 1 = Kafka failure). */
export async function main(args: string[]): Promise<number> {
  let controller: AbortController | undefined;
  const onSignal = () => controller?.abort();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  try {
    const a = parseSimulateArgs(args);
    if (a.help) {
      console.log(USAGE);
      return 0;
    }
    const plan = await loadPlan(a.config);
    const k = plan.source.kafka;
    const s = plan.source.simulator;
    const rate = a.rate ?? s.rate;
    if (a.startMs !== undefined && rate <= 0) {
      throw new UserError(
        "--start needs a positive --rate: the events per second of event time (e.g. --rate 100)",
      );
    }
    controller = new AbortController();
    for (const sig of signals) Deno.addSignalListener(sig, onSignal);
    const summary = await simulate({
      brokers: a.brokers ?? k.brokers,
      topic: a.topic ?? k.topic,
      clientId: `${k.clientId}-simulator`,
      createTopic: k.createTopics,
      partitions: k.partitions,
      rate,
      count: a.count,
      durationMs: a.durationMs,
      progressMs: a.quiet ? 0 : 5_000,
      maxRetryTimeMs: a.maxRetryTimeMs,
      signal: controller.signal,
      generator: {
        seed: a.seed ?? s.seed,
        devices: a.devices ?? s.devices,
        antennas: a.antennas ?? s.antennas,
        apps: s.apps,
        startMs: a.startMs,
        rate: a.startMs !== undefined ? rate : undefined,
        lateShare: a.lateShare ?? s.lateShare,
        maxLatenessMs: a.maxLatenessMs ?? Math.max(1, s.maxLatenessMs),
        malformedShare: a.malformedShare ?? s.malformedShare,
        maxPayloadBytes: plan.schema.maxPayloadBytes,
      },
    });
    console.log(JSON.stringify(summary));
    return 0;
  } catch (err) {
    if (err instanceof UserError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    if (err instanceof RangeError) {
      // The generator's own checks (e.g. late + malformed shares above 1).
      console.error(`error: ${err.message}`);
      return 2;
    }
    const e = err as Error;
    if (controller?.signal.aborted) {
      console.error(
        `error: simulate stopped while Kafka was unreachable; unacknowledged messages were not sent`,
      );
      return 1;
    }
    const kafka = e.name.startsWith("KafkaJS") ? " (is Kafka running at --brokers?)" : "";
    console.error(`error: simulate failed: ${e.name}: ${e.message}${kafka}`);
    return 1;
  } finally {
    if (controller) {
      for (const sig of signals) Deno.removeSignalListener(sig, onSignal);
    }
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
