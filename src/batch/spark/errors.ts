/**
 * How a run on Spark fails. Whatever went wrong on the engine's side (a
 * script error, lost executors, a timeout, no Spark installed, a Dataproc
 * batch that ended FAILED or CANCELLED) becomes one `SparkRunError` whose
 * message is the engine's own last meaningful words: the job records it on
 * the run, and the scheduler retries the hour like any failed run.
 */
export class SparkRunError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SparkRunError";
  }
}
