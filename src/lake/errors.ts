/**
 * Errors of the lake. A `StoreError` is a fault of an object store and names
 * the operation and key, so the caller's retry loop can log something useful;
 * its `kind` lets callers tell a missing object or a lost precondition race
 * from a transient fault. A `LakeFileError` says a Parquet file of the lake is
 * unreadable (corrupt, truncated, wrong schema) and names the file.
 */

export type StoreOp = "put" | "get" | "read" | "size" | "list" | "delete" | "open";

/** `not_found`: no such object. `exists`: an `ifAbsent` put lost to an existing object. */
export type StoreErrorKind = "not_found" | "exists" | "fault";

export class StoreError extends Error {
  readonly op: StoreOp;
  readonly key: string;
  readonly kind: StoreErrorKind;
  constructor(
    op: StoreOp,
    key: string,
    kind: StoreErrorKind,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`Object store ${op} of "${key}" failed: ${detail}`, options);
    this.name = "StoreError";
    this.op = op;
    this.key = key;
    this.kind = kind;
  }
}

export class LakeFileError extends Error {
  /** Store key of the bad file. */
  readonly key: string;
  constructor(key: string, detail: string, options?: { cause?: unknown }) {
    super(`Lake file "${key}" is unreadable: ${detail}`, options);
    this.name = "LakeFileError";
    this.key = key;
  }
}
