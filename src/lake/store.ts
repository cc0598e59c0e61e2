/**
 * The object store the lake lives in: a flat key space of immutable blobs, as
 * on GCS. Keys are relative to the lake root (a folder, or a bucket prefix) and
 * use `/`. Two implementations pass one contract suite (tests/lake/store_test.ts):
 * `LocalStore` (a folder) and `GcsStore` (`@google-cloud/storage`). A put is
 * whole or nothing. Stores do not retry: faults surface as `StoreError`s
 * naming the operation and key, and the caller decides how to back off.
 */

export interface PutOptions {
  /** Fail with a `StoreError` of kind `exists` if the key already exists. Default false (overwrite). */
  readonly ifAbsent?: boolean;
}

export interface StoreEntry {
  readonly key: string;
  readonly size: number;
}

export interface ObjectStore {
  /** Human-readable location, for logs: `file:///…` or `gs://bucket/prefix`. */
  readonly uri: string;
  /** Stores `bytes` under `key` atomically: readers see the old object, or the whole new one. */
  put(key: string, bytes: Uint8Array, options?: PutOptions): Promise<void>;
  /** The whole object; `StoreError` of kind `not_found` if missing. */
  get(key: string): Promise<Uint8Array>;
  /** Bytes `[start, end)` of the object (hyparquet's AsyncBuffer slices). */
  read(key: string, start: number, end: number): Promise<Uint8Array>;
  size(key: string): Promise<number>;
  /** Every key starting with `prefix` (recursive), sorted by key. */
  list(prefix: string): Promise<StoreEntry[]>;
  /** Removes the object; a missing key is not an error. */
  delete(key: string): Promise<void>;
}

/** Rejects keys that could escape the root or that no backend can hold. */
export function checkKey(key: string): void {
  if (
    key === "" || key.startsWith("/") || key.endsWith("/") || key.includes("\\") ||
    key.split("/").some((part) => part === "" || part === "." || part === "..")
  ) {
    throw new TypeError(`Invalid object key "${key}"`);
  }
}
