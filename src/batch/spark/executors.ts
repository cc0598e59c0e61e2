/**
 * Executors a run loses on a standalone master, read from the driver's log
 * lines (runner.ts turns the two lines below on). A standalone master
 * relaunches a dead executor for as long as the application lives: its
 * `spark.deploy.maxExecutorRetries` never removes an application while one of
 * its executors is launching, which with two workers is always. Executors that
 * cannot run (a bad JVM option, more memory than the machine has) would keep a
 * run going, relaunched thousands of times, until `batch.spark.timeout`, and
 * the run would then fail saying only that it was killed. Spark's own limit
 * (`spark.executor.maxNumFailures`) applies on YARN and Kubernetes only; the
 * engine applies `batch.spark.max_executor_failures` on any master whose
 * driver reports these lines.
 */

/** The driver's logger whose INFO lines say which executors were granted and lost. */
export const EXECUTOR_LOGGER = "org.apache.spark.scheduler.cluster.StandaloneSchedulerBackend";

const APP = /Connected to Spark cluster with app ID (\S+)/;
const REMOVED = /Executor (\S+) removed: (.*)$/;
// A process that ended (the worker saw it exit) or whose worker went away; an
// executor the driver itself gave back (dynamic allocation) is no failure.
const FAILURE = /^(Command exited with code -?\d+|worker lost)/i;

/** What the driver has said about the run's executors so far. */
export class ExecutorWatch {
  appId: string | undefined;
  failures = 0;
  lastReason: string | undefined;

  constructor(readonly limit: number) {}

  /**
   * Takes one line of the driver's output; once `limit` executors have
   * failed, the message the run fails with, else undefined.
   *
   * @example new ExecutorWatch(1).line("… INFO StandaloneSchedulerBackend: Executor app-1/0 removed: Command exited with code 1") // "the cluster's executors keep failing: …"
   */
  line(line: string): string | undefined {
    const app = APP.exec(line);
    if (app) this.appId = app[1];
    const removed = REMOVED.exec(line);
    if (!removed || !FAILURE.test(removed[2])) return undefined;
    this.failures++;
    this.lastReason = removed[2].trim();
    return this.failures >= this.limit ? this.verdict() : undefined;
  }

  private verdict(): string {
    const app = this.appId ?? "the application";
    return `the cluster's executors keep failing: ${this.failures} lost ` +
      `(batch.spark.max_executor_failures), the last: ${this.lastReason}; ` +
      `each one's stderr is on its worker, in work/${app}/<executor id>/`;
  }
}
