/**
 * A mistake of the user (bad config, bad CLI argument, bad request): printed as
 * one line, never with a stack trace. `status` maps it to HTTP in the API.
 */
export class UserError extends Error {
  readonly status: number;
  constructor(message: string, options?: { status?: number; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "UserError";
    this.status = options?.status ?? 400;
  }
}
