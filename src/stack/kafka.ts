/**
 * A single-node KRaft Kafka broker on 127.0.0.1:19092 (controller 19093) for
 * development and tests, run from Maven Central jars with the machine's Java 17:
 * `kafka/pom.xml` is resolved into `.state/kafka/lib`, the storage is formatted
 * once, and the broker runs detached with its logs in `.state/kafka/logs`.
 */
import { Kafka, logLevel } from "kafkajs";
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
const DIR = `${STATE_DIR}/kafka`;
const LIB = `${DIR}/lib`;
const DATA = `${DIR}/data`;
const LOGS = `${DIR}/logs`;
const PROPS = `${DIR}/server.properties`;
const PID_FILE = `${DIR}/kafka.pid`;
const STDOUT_LOG = `${LOGS}/stdout.log`;
/** Records which pom the jars in lib/ came from, so editing the pom reinstalls. */
const INSTALLED = `${LIB}/.installed-from`;
/** Identifies our broker's process among all java processes. */
const MARKER = `kafka.Kafka ${PROPS}`;

const log_ = log.child({ component: "stack", service: "kafka" });

function serverProperties(): string {
  return [
    "# Written by src/stack/kafka.ts on every start: edit that file, not this one.",
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.bootstrap.servers=127.0.0.1:${KAFKA_CONTROLLER_PORT}`,
    `listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${KAFKA_PORT},CONTROLLER://127.0.0.1:${KAFKA_CONTROLLER_PORT}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    `log.dirs=${DATA}`,
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

function javaArgs(mainClass: string, args: string[]): string[] {
  return [
    "-Xmx768m",
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    `-Dlog4j2.configurationFile=${LOG4J}`,
    `-Dkafka.logs.dir=${LOGS}`,
    "-cp",
    `${LIB}/*`,
    mainClass,
    ...args,
  ];
}

async function formatStorage(): Promise<void> {
  if (await exists(`${DATA}/meta.properties`)) return;
  log_.info("formatting KRaft storage", { dir: DATA });
  await runChecked(
    "java",
    javaArgs("kafka.tools.StorageTool", [
      "format",
      "-t",
      clusterId(),
      "-c",
      PROPS,
      "--standalone",
      "-g",
    ]),
  );
}

/** True once the broker answers a metadata request (not merely accepts TCP). */
export async function kafkaReady(timeoutMs = 3000): Promise<boolean> {
  const kafka = new Kafka({
    brokers: [`127.0.0.1:${KAFKA_PORT}`],
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

export const kafkaService: Service = {
  name: "kafka",
  address: `127.0.0.1:${KAFKA_PORT}`,

  async up() {
    const pid = await livePid(PID_FILE, MARKER);
    if (pid) {
      await waitFor("Kafka", () => kafkaReady(), {
        timeoutMs: 60_000,
        alive: async () => (await livePid(PID_FILE, MARKER)) !== undefined,
        logFile: `${LOGS}/server.log`,
      });
      return;
    }
    for (const port of [KAFKA_PORT, KAFKA_CONTROLLER_PORT]) {
      if (await portOpen(port)) {
        throw new UserError(
          `port ${port} is already in use by another process: stop it (another checkout's stack?) before starting Kafka`,
        );
      }
    }
    await Deno.mkdir(LOGS, { recursive: true });
    await install();
    await Deno.writeTextFile(PROPS, serverProperties());
    await formatStorage();
    log_.info("starting Kafka", { address: this.address, logs: LOGS });
    const started = await spawnDetached("java", javaArgs("kafka.Kafka", [PROPS]), {
      logFile: STDOUT_LOG,
      pidFile: PID_FILE,
    });
    await waitFor("Kafka", () => kafkaReady(), {
      timeoutMs: 90_000,
      alive: () => pidRunning(started),
      logFile: `${LOGS}/server.log`,
    });
  },

  async down() {
    const pid = await livePid(PID_FILE, MARKER);
    if (!pid) return;
    log_.info("stopping Kafka", { pid });
    // A controlled shutdown takes a few seconds; past 30 s something is stuck.
    await stopPid(pid, 30_000);
    await Deno.remove(PID_FILE).catch(() => {});
  },

  async wipe() {
    await Deno.remove(DIR, { recursive: true }).catch(() => {});
  },

  async status(): Promise<ServiceStatus> {
    const pid = await livePid(PID_FILE, MARKER);
    const base = { name: "kafka" as const, address: this.address };
    if (pid) {
      const ready = await kafkaReady();
      return { ...base, running: ready, pid, detail: ready ? undefined : "starting or unhealthy" };
    }
    if (await portOpen(KAFKA_PORT)) {
      return { ...base, running: false, detail: "port taken by a process not of this stack" };
    }
    return {
      ...base,
      running: false,
      detail: (await exists(INSTALLED)) ? "stopped" : "not installed",
    };
  },
};
