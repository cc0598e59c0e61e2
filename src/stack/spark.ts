/**
 * A real Apache Spark standalone cluster on this machine, for `batch.engine:
 * spark`: one master (spark://127.0.0.1:7077, UI 18080) and two workers (one
 * core, 1 GiB each; ports and UIs in 18081-18084), every port on 127.0.0.1.
 * Spark comes from PyPI (`pyspark`, which ships spark-submit, spark-sql and
 * spark-class) into a virtualenv under `.state/spark/`; Google's shaded GCS
 * connector comes from Maven Central, so Spark reads and writes a `gs://`
 * lake (the fake-gcs-server of this stack, without auth). Not part of the
 * default `stack up`: it is heavy; `deno task stack up spark` starts it.
 */
import { UserError } from "../errors.ts";
import { log } from "../log.ts";
import { STATE_DIR } from "./_paths.ts";
import {
  exists,
  livePid,
  logTail,
  pidRunning,
  portOpen,
  runChecked,
  spawnDetached,
  stopPid,
  waitFor,
} from "./_process.ts";
import type { Service, ServiceStatus } from "./_service.ts";

export const PYSPARK_VERSION = "4.1.1";
/** Built against Hadoop 3.4.2, the Hadoop client pyspark 4.1.1 ships. */
export const GCS_CONNECTOR_VERSION = "4.0.4";
export const SPARK_MASTER_PORT = 7077;
export const SPARK_MASTER_UI_PORT = 18080;
export const SPARK_MASTER_URL = `spark://127.0.0.1:${SPARK_MASTER_PORT}`;
/** Each worker's port and UI port. */
const WORKERS = [
  { port: 18081, ui: 18082 },
  { port: 18083, ui: 18084 },
] as const;

const DIR = `${STATE_DIR}/spark`;
/** The workers' folder: each executor's stdout and stderr in `<app id>/<executor id>/`. */
export const SPARK_WORK_DIR = `${DIR}/work`;
const VENV = `${DIR}/venv`;
const PIP_MARKER = `${DIR}/pyspark.version`;
const JARS = `${DIR}/jars`;
/** The shaded GCS connector jar `up` downloads (`--jars` of a run on a gs:// lake). */
export const GCS_CONNECTOR_JAR = `${JARS}/gcs-connector-${GCS_CONNECTOR_VERSION}-shaded.jar`;
const MAVEN = "https://repo1.maven.org/maven2/com/google/cloud/bigdataoss/gcs-connector";

const log_ = log.child({ component: "stack", service: "spark" });

/**
 * Where `up` installed Spark (the pyspark package folder, a complete
 * SPARK_HOME), or undefined when it is not installed.
 */
export async function stackSparkHome(): Promise<string | undefined> {
  try {
    for await (const e of Deno.readDir(`${VENV}/lib`)) {
      const home = `${VENV}/lib/${e.name}/site-packages/pyspark`;
      if (await exists(`${home}/bin/spark-sql`)) return home;
    }
  } catch {
    // no venv
  }
  return undefined;
}

async function install(): Promise<string> {
  await Deno.mkdir(JARS, { recursive: true });
  if (!(await exists(GCS_CONNECTOR_JAR))) {
    const url =
      `${MAVEN}/${GCS_CONNECTOR_VERSION}/gcs-connector-${GCS_CONNECTOR_VERSION}-shaded.jar`;
    log_.info("downloading the GCS connector from Maven Central", { url });
    const res = await fetch(url);
    if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const sha = await fetch(`${url}.sha1`).then((r) => r.text());
    const got = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-1", bytes)))
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    if (sha.trim().split(/\s/)[0] !== got) throw new Error(`${url}: SHA-1 mismatch`);
    await Deno.writeFile(`${GCS_CONNECTOR_JAR}.part`, bytes);
    await Deno.rename(`${GCS_CONNECTOR_JAR}.part`, GCS_CONNECTOR_JAR);
  }
  const marker = await Deno.readTextFile(PIP_MARKER).catch(() => "");
  const installed = await stackSparkHome();
  if (installed && marker.trim() === PYSPARK_VERSION) return installed;
  const python = Deno.env.get("SPARK_PYTHON") ?? "python3";
  if (!(await exists(`${VENV}/bin/pip`))) {
    await runChecked(python, ["-m", "venv", VENV]).catch((e) => {
      throw new UserError(`cannot create a virtualenv with "${python}" (python3, venv): ${e}`);
    });
  }
  log_.info("pip install pyspark (a minute or two the first time)", { version: PYSPARK_VERSION });
  await runChecked(`${VENV}/bin/pip`, [
    "install",
    "--disable-pip-version-check",
    "-q",
    `pyspark==${PYSPARK_VERSION}`,
  ]);
  await Deno.writeTextFile(PIP_MARKER, PYSPARK_VERSION + "\n");
  const home = await stackSparkHome();
  if (!home) throw new Error(`pyspark installed but no bin/spark-sql under ${VENV}/lib`);
  return home;
}

/**
 * A class-data-sharing archive of a `spark-sql` driver's classes (the JDK's
 * dynamic CDS), made once by `up`: a driver JVM that maps it loads Spark's
 * classes from it instead of thousands of jar entries, and starts about 5 s
 * sooner on this machine (a small hour on local[2]: 20.6 s → 15.0 s). It
 * fits only this Spark home and JDK; a JVM that cannot map it runs without.
 */
export const DRIVER_CDS_ARCHIVE = `${DIR}/cds/driver-${PYSPARK_VERSION}.jsa`;

/** JVM options of a short-lived driver: C1 only and the serial GC (small heaps, 2 cores). */
export const SHORT_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC";

/**
 * What the archive is made from: a run that loads what an hour's script
 * (src/batch/spark/render.ts) does: Parquet written and read, a window,
 * a broadcast join, an eager cache, every aggregation, a Parquet result.
 */
const WARM_UP_SQL = `SET spark.sql.session.timeZone=UTC;
SET spark.sql.ansi.enabled=true;
INSERT OVERWRITE DIRECTORY '\${dir}/lake' USING parquet
SELECT timestamp_seconds(id) AS timestamp, CAST(id % 50 AS STRING) AS id, CAST(id % 5 AS STRING) AS antenna_id,
  CAST(id % 3 AS STRING) AS app, id * 10 AS bytes, CAST(id % 2 AS INT) AS partition, id AS offset FROM range(2000);
INSERT OVERWRITE DIRECTORY '\${dir}/users' USING parquet
SELECT CAST(id AS STRING) AS id, concat('u', id % 7) AS email, concat('n', id % 3) AS name, id * 1000 AS quota FROM range(40);
CREATE OR REPLACE TEMPORARY VIEW lake_rows USING parquet OPTIONS (path '\${dir}/lake', pathGlobFilter 'part-*.parquet');
CREATE OR REPLACE TEMPORARY VIEW users USING parquet OPTIONS (path '\${dir}/users');
CACHE TABLE joined AS
SELECT e.id, e.antenna_id, e.app, e.bytes, unix_seconds(e.timestamp) AS ts, u.id IS NOT NULL AS known,
  COALESCE(u.email, 'x') AS email, COALESCE(u.name, 'x') AS name FROM (
  SELECT *, row_number() OVER (PARTITION BY partition, offset ORDER BY offset) AS copy FROM lake_rows
) e LEFT JOIN users u ON e.id = u.id WHERE copy = 1;
INSERT OVERWRITE DIRECTORY '\${dir}/out' USING parquet
SELECT 'a', concat_ws('|', app, CAST(ts AS STRING)), CAST(sum(bytes) AS BIGINT), count(*) FROM joined WHERE known GROUP BY app, ts
UNION ALL SELECT 'b', email, CAST(min(bytes) AS BIGINT), count(DISTINCT id) FROM joined GROUP BY email HAVING count(*) > 0
UNION ALL SELECT 'c', s.item, s.value, 0 FROM (SELECT stack(2, 'rows', count(*), 'unknown', count_if(NOT known)) AS (item, value)
  FROM (SELECT * FROM joined)) s
UNION ALL SELECT 'd', id, CAST(max(bytes) AS BIGINT), 0 FROM (SELECT DISTINCT id, bytes FROM joined ORDER BY id LIMIT 5) GROUP BY id;
`;

/**
 * Makes DRIVER_CDS_ARCHIVE unless it exists: one local spark-sql run, dumped
 * at its exit. Not on CI: a fresh CI machine would make it for one test run,
 * and the minute it takes is more than its ~5 s per test driver saves there.
 */
async function makeDriverArchive(home: string): Promise<void> {
  if (Deno.env.get("CI") === "true" || await exists(DRIVER_CDS_ARCHIVE)) return;
  log_.info("making the Spark driver's class archive (once, about a minute)", {
    archive: DRIVER_CDS_ARCHIVE,
  });
  await Deno.mkdir(`${DIR}/cds`, { recursive: true });
  const dir = await Deno.makeTempDir({ prefix: "spark-cds-" });
  // Two `up`s at once each write their own; either result is whole.
  const part = `${DRIVER_CDS_ARCHIVE}.${Deno.pid}.part`;
  try {
    await Deno.writeTextFile(`${dir}/warm.sql`, WARM_UP_SQL);
    await runChecked(`${home}/bin/spark-sql`, [
      "--master",
      "local[1]",
      ...[
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.catalogImplementation=in-memory",
      ],
      ...["--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1"],
      "--conf",
      `spark.driver.extraJavaOptions=${SHORT_JVM_OPTIONS} -XX:ArchiveClassesAtExit=${part}`,
      ...["-d", `dir=file://${dir}`, "-f", `${dir}/warm.sql`],
    ], { cwd: dir, env: { SPARK_HOME: home, SPARK_LOCAL_IP: "127.0.0.1" } });
    await Deno.rename(part, DRIVER_CDS_ARCHIVE);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(part).catch(() => {});
  }
}

/**
 * `spark.driver.extraJavaOptions` for short runs on the stack's Spark (tests,
 * benchmarks of small hours): SHORT_JVM_OPTIONS, and the class archive when
 * `up` made it.
 */
export async function shortDriverJavaOptions(): Promise<string> {
  return await exists(DRIVER_CDS_ARCHIVE)
    ? `${SHORT_JVM_OPTIONS} -XX:SharedArchiveFile=${DRIVER_CDS_ARCHIVE}`
    : SHORT_JVM_OPTIONS;
}

/** Environment of the daemons: loopback only, small daemon heaps (2 cores, shared machine). */
function daemonEnv(home: string): Record<string, string> {
  return {
    SPARK_HOME: home,
    SPARK_LOCAL_IP: "127.0.0.1",
    SPARK_DAEMON_MEMORY: "256m",
    SPARK_LOG_DIR: DIR,
    SPARK_WORKER_DIR: SPARK_WORK_DIR,
  };
}

const MASTER_MARKER = `deploy.master.Master --host 127.0.0.1 --port ${SPARK_MASTER_PORT}`;
const workerMarker = (ui: number) => `--webui-port ${ui}`;
const masterPid = `${DIR}/master.pid`;
const workerPid = (i: number) => `${DIR}/worker-${i}.pid`;
const masterLog = `${DIR}/master.log`;
const workerLog = (i: number) => `${DIR}/worker-${i}.log`;

/** Workers the master reports ALIVE (its UI's JSON). */
export async function aliveWorkers(): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${SPARK_MASTER_UI_PORT}/json/`, {
      signal: AbortSignal.timeout(3000),
    });
    const body = await res.json() as { workers?: { state: string }[] };
    return (body.workers ?? []).filter((w) => w.state === "ALIVE").length;
  } catch {
    return 0;
  }
}

async function startMaster(home: string): Promise<void> {
  if (await livePid(masterPid, MASTER_MARKER)) return;
  if (await portOpen(SPARK_MASTER_PORT)) {
    throw new UserError(`port ${SPARK_MASTER_PORT} is already in use by another process`);
  }
  log_.info("starting the Spark master", { url: SPARK_MASTER_URL, log: masterLog });
  const pid = await spawnDetached(`${home}/bin/spark-class`, [
    "org.apache.spark.deploy.master.Master",
    "--host",
    "127.0.0.1",
    "--port",
    String(SPARK_MASTER_PORT),
    "--webui-port",
    String(SPARK_MASTER_UI_PORT),
  ], { logFile: masterLog, pidFile: masterPid, env: daemonEnv(home) });
  await waitFor("Spark master", () => portOpen(SPARK_MASTER_PORT), {
    timeoutMs: 60_000,
    alive: () => pidRunning(pid),
    logFile: masterLog,
  });
}

async function startWorker(home: string, i: number): Promise<void> {
  const w = WORKERS[i];
  if (await livePid(workerPid(i), workerMarker(w.ui))) return;
  log_.info("starting a Spark worker", { port: w.port, ui: w.ui, log: workerLog(i) });
  await spawnDetached(`${home}/bin/spark-class`, [
    "org.apache.spark.deploy.worker.Worker",
    SPARK_MASTER_URL,
    "--host",
    "127.0.0.1",
    "--port",
    String(w.port),
    "--webui-port",
    String(w.ui),
    "--cores",
    "1",
    "--memory",
    "1g",
    "--work-dir",
    SPARK_WORK_DIR,
  ], { logFile: workerLog(i), pidFile: workerPid(i), env: daemonEnv(home) });
}

export const sparkService: Service = {
  name: "spark",
  address: SPARK_MASTER_URL,

  async up() {
    const home = await install();
    await startMaster(home);
    for (let i = 0; i < WORKERS.length; i++) await startWorker(home, i);
    await waitFor("Spark workers", async () => (await aliveWorkers()) >= WORKERS.length, {
      timeoutMs: 90_000,
      logFile: workerLog(WORKERS.length - 1),
    });
    await makeDriverArchive(home);
  },

  async down() {
    for (let i = WORKERS.length - 1; i >= 0; i--) {
      const pid = await livePid(workerPid(i), workerMarker(WORKERS[i].ui));
      if (pid) await stopPid(pid, 15_000);
      await Deno.remove(workerPid(i)).catch(() => {});
    }
    const pid = await livePid(masterPid, MASTER_MARKER);
    if (pid) {
      log_.info("stopping the Spark cluster", { pid });
      await stopPid(pid, 15_000);
    }
    await Deno.remove(masterPid).catch(() => {});
  },

  async wipe() {
    await Deno.remove(DIR, { recursive: true }).catch(() => {});
  },

  async status(): Promise<ServiceStatus> {
    const base = { name: "spark" as const, address: SPARK_MASTER_URL };
    const pid = await livePid(masterPid, MASTER_MARKER);
    if (pid) {
      const workers = await aliveWorkers();
      const running = workers >= WORKERS.length;
      return {
        ...base,
        running,
        pid,
        detail: `${workers}/${WORKERS.length} workers alive` +
          (running ? "" : await logTail(workerLog(0), 3)),
      };
    }
    if (await portOpen(SPARK_MASTER_PORT)) {
      return { ...base, running: false, detail: "port taken by a process not of this stack" };
    }
    return {
      ...base,
      running: false,
      detail: (await stackSparkHome()) ? "stopped" : "not installed",
    };
  },
};
