/**
 * A single-node KRaft Kafka broker on 127.0.0.1:19092 (controller 19093) for
 * development and tests, run from Maven Central jars with the machine's Java 17:
 * `kafka/pom.xml` is resolved into `.state/kafka/lib`, the storage is formatted
 * once, and the broker runs detached with its logs in `.state/kafka/logs`.
 * `createKafkaService` builds the same broker on other ports and another state
 * folder (sharing the stack's jars), for tests that must stop a broker without
 * taking the shared one away from everyone else.
 */
import { Kafka, logLevel } from "kafkajs";
import "../kafkajs_timer_fix.ts";
import { UserError } from "../errors.ts";
import { log } from "../log.ts";
import { STATE_DIR } from "./_paths.ts";
import {
  exists,
  livePid,
  onPath,
  pidRunning,
  portOpen,
  run,
  runChecked,
  spawnDetached,
  stopPid,
  waitFor,
} from "./_process.ts";
import type { Service, ServiceStatus } from "./_service.ts";

export const KAFKA_PORT = 19092;
export const KAFKA_CONTROLLER_PORT = 19093;

const HERE = new URL("./kafka/", import.meta.url).pathname;
const POM = `${HERE}pom.xml`;
const LOG4J = `${HERE}log4j2.properties`;
/** The stack's jars, which every broker of createKafkaService runs from. */
const LIB = `${STATE_DIR}/kafka/lib`;
/** Records which pom the jars in lib/ came from, so editing the pom reinstalls. */
const INSTALLED = `${LIB}/.installed-from`;

const log_ = log.child({ component: "stack", service: "kafka" });

/** Where one broker listens and keeps its state. */
export interface KafkaServiceOptions {
  /** PLAINTEXT port on 127.0.0.1. */
  readonly port: number;
  /** KRaft controller port on 127.0.0.1. */
  readonly controllerPort: number;
  /** State folder: data/, logs/, server.properties and the pid file. */
  readonly dir: string;
}

/** The files of one broker under its state folder. */
function brokerPaths(dir: string) {
  const props = `${dir}/server.properties`;
  return {
    data: `${dir}/data`,
    logs: `${dir}/logs`,
    props,
    pidFile: `${dir}/kafka.pid`,
    stdoutLog: `${dir}/logs/stdout.log`,
    /** Identifies this broker's process among all java processes. */
    marker: `kafka.Kafka ${props}`,
  };
}

function serverProperties(o: KafkaServiceOptions): string {
  const listeners = `PLAINTEXT://127.0.0.1:${o.port},CONTROLLER://127.0.0.1:${o.controllerPort}`;
  return [
    "# Written by src/stack/kafka.ts on every start: edit that file, not this one.",
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.bootstrap.servers=127.0.0.1:${o.controllerPort}`,
    `listeners=${listeners}`,
    `advertised.listeners=${listeners}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    `log.dirs=${brokerPaths(o.dir).data}`,
    "num.partitions=3",
    "auto.create.topics.enable=true",
    "delete.topic.enable=true",
    // One broker: every internal topic must be satisfied by a single replica.
    "offsets.topic.replication.factor=1",
    // The default 50 partitions make the first consumer group of a fresh broker slow.
    "offsets.topic.num.partitions=10",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "share.coordinator.state.topic.replication.factor=1",
    "share.coordinator.state.topic.min.isr=1",
    // The 3 s default delays every test's first consumer-group join.
    "group.initial.rebalance.delay.ms=0",
    // Tests create many short-lived topics; keep the disk in check.
    "log.retention.hours=24",
    "",
  ].join("\n");
}

async function install(): Promise<void> {
  const pom = await Deno.readTextFile(POM);
  if (!(await onPath("java"))) throw new UserError("java not found: install OpenJDK 17");
  const version = await run("java", ["-version"]);
  const major = Number((version.stderr.match(/version "(\d+)/) ?? [])[1]);
  if (major < 17) {
    throw new UserError(`Kafka 4 needs Java 17 or newer, found Java ${major}: install OpenJDK 17`);
  }
  if ((await exists(INSTALLED)) && (await Deno.readTextFile(INSTALLED)) === pom) return;
  if (!(await onPath("mvn"))) throw new UserError("mvn not found: install Maven");
  log_.info("downloading Kafka jars from Maven Central", { into: LIB });
  // Resolve into a scratch folder and rename, so an interrupted download never
  // leaves a half-filled lib/ that looks installed.
  const tmp = `${LIB}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await runChecked("mvn", [
    "-q",
    "-B",
    "-f",
    POM,
    "dependency:copy-dependencies",
    `-DoutputDirectory=${tmp}`,
  ]);
  await Deno.writeTextFile(`${tmp}/.installed-from`, pom);
  await Deno.remove(LIB, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, LIB);
}

/** A Kafka cluster id: 16 random bytes, base64url without padding, not starting with "-". */
function clusterId(): string {
  while (true) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const id = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
      .replace(/=+$/, "");
    if (!id.startsWith("-")) return id;
  }
}

function javaArgs(mainClass: string, args: string[], logs: string): string[] {
  return [
    "-Xmx768m",
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    `-Dlog4j2.configurationFile=${LOG4J}`,
    `-Dkafka.logs.dir=${logs}`,
    "-cp",
    `${LIB}/*`,
    mainClass,
    ...args,
  ];
}

async function formatStorage(dir: string): Promise<void> {
  const { data, props, logs } = brokerPaths(dir);
  if (await exists(`${data}/meta.properties`)) return;
  log_.info("formatting KRaft storage", { dir: data });
  await runChecked(
    "java",
    javaArgs("kafka.tools.StorageTool", [
      "format",
      "-t",
      clusterId(),
      "-c",
      props,
      "--standalone",
      "-g",
    ], logs),
  );
}

/** True once the broker answers a metadata request (not merely accepts TCP). */
export async function kafkaReady(timeoutMs = 3000, port = KAFKA_PORT): Promise<boolean> {
  const kafka = new Kafka({
    brokers: [`127.0.0.1:${port}`],
    clientId: "stack-probe",
    logLevel: logLevel.NOTHING,
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0 && cluster.controller !== null;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/**
 * A broker on `opts.port`, its state under `opts.dir`, run from the stack's
 * jars (installed by the first `up`).
 *
 * @example
 * const broker = createKafkaService({ port: 19192, controllerPort: 19193, dir: `${STATE_DIR}/kafka-x` });
 * await broker.up();
 */
export function createKafkaService(opts: KafkaServiceOptions): Service {
  const { logs, props, pidFile, stdoutLog, marker } = brokerPaths(opts.dir);
  const ready = () => kafkaReady(3000, opts.port);
  return {
    name: "kafka",
    address: `127.0.0.1:${opts.port}`,

    async up() {
      const pid = await livePid(pidFile, marker);
      if (pid) {
        await waitFor("Kafka", ready, {
          timeoutMs: 60_000,
          alive: async () => (await livePid(pidFile, marker)) !== undefined,
          logFile: `${logs}/server.log`,
        });
        return;
      }
      for (const port of [opts.port, opts.controllerPort]) {
        if (await portOpen(port)) {
          throw new UserError(
            `port ${port} is already in use by another process: stop it (another checkout's stack?) before starting Kafka`,
          );
        }
      }
      await Deno.mkdir(logs, { recursive: true });
      await install();
      await Deno.writeTextFile(props, serverProperties(opts));
      await formatStorage(opts.dir);
      log_.info("starting Kafka", { address: this.address, logs });
      const started = await spawnDetached("java", javaArgs("kafka.Kafka", [props], logs), {
        logFile: stdoutLog,
        pidFile,
      });
      await waitFor("Kafka", ready, {
        timeoutMs: 90_000,
        alive: () => pidRunning(started),
        logFile: `${logs}/server.log`,
      });
    },

    async down() {
      const pid = await livePid(pidFile, marker);
      if (!pid) return;
      log_.info("stopping Kafka", { pid });
      // A controlled shutdown takes a few seconds; past 30 s something is stuck.
      await stopPid(pid, 30_000);
      await Deno.remove(pidFile).catch(() => {});
    },

    async wipe() {
      // The stack's own broker owns the jars; another one leaves them in place.
      await Deno.remove(opts.dir, { recursive: true }).catch(() => {});
    },

    async status(): Promise<ServiceStatus> {
      const pid = await livePid(pidFile, marker);
      const base = { name: "kafka" as const, address: this.address };
      if (pid) {
        const isReady = await ready();
        return {
          ...base,
          running: isReady,
          pid,
          detail: isReady ? undefined : "starting or unhealthy",
        };
      }
      if (await portOpen(opts.port)) {
        return { ...base, running: false, detail: "port taken by a process not of this stack" };
      }
      return {
        ...base,
        running: false,
        detail: (await exists(INSTALLED)) ? "stopped" : "not installed",
      };
    },
  };
}

/** The stack's broker, which every engineer's tests share. */
export const kafkaService: Service = createKafkaService({
  port: KAFKA_PORT,
  controllerPort: KAFKA_CONTROLLER_PORT,
  dir: `${STATE_DIR}/kafka`,
});
