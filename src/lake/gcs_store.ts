/**
 * An `ObjectStore` over a Google Cloud Storage bucket (or fake-gcs-server),
 * through `@google-cloud/storage`. Every put is one non-resumable upload, which
 * GCS applies atomically; `ifAbsent` adds the precondition `ifGenerationMatch: 0`.
 * The bucket is checked once, lazily, on first use: created when the endpoint
 * is an emulator, required to exist against Google (with the default
 * credentials, `GOOGLE_APPLICATION_CREDENTIALS`).
 */
import { Storage } from "@google-cloud/storage";
import type { Bucket } from "@google-cloud/storage";
import { StoreError, type StoreOp } from "./errors.ts";
import { joinKey } from "./paths.ts";
import { checkKey, type ObjectStore, type PutOptions, type StoreEntry } from "./store.ts";

export interface GcsStoreOptions {
  readonly bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slash. Default "". */
  readonly prefix?: string;
  /** API endpoint of an emulator; undefined = Google. */
  readonly apiEndpoint?: string;
  /** Default "antenna-lambda" against an emulator, the credentials' project otherwise. */
  readonly projectId?: string;
  /** Keys per list request (GCS caps it at 1000). Default 1000. */
  readonly pageSize?: number;
}

function httpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown })?.code;
  return typeof code === "number" ? code : undefined;
}

function wrap(op: StoreOp, key: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const code = httpCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 404) return new StoreError(op, key, "not_found", "no such object", { cause: err });
  if (code === 412 && op === "put") {
    return new StoreError(op, key, "exists", "object already exists (precondition failed)", {
      cause: err,
    });
  }
  return new StoreError(op, key, "fault", code ? `HTTP ${code}: ${detail}` : detail, {
    cause: err,
  });
}

export class GcsStore implements ObjectStore {
  readonly uri: string;
  readonly #bucket: Bucket;
  readonly #prefix: string;
  readonly #emulator: boolean;
  readonly #pageSize: number;
  #ready?: Promise<void>;

  constructor(options: GcsStoreOptions) {
    this.#prefix = (options.prefix ?? "").replace(/^\/+|\/+$/g, "");
    this.uri = `gs://${options.bucket}${this.#prefix ? "/" + this.#prefix : ""}`;
    this.#emulator = options.apiEndpoint !== undefined;
    this.#pageSize = options.pageSize ?? 1000;
    const storage = new Storage({
      apiEndpoint: options.apiEndpoint,
      projectId: options.projectId ?? (this.#emulator ? "antenna-lambda" : undefined),
      // Retrying is the caller's job (it pauses consumption and logs); the
      // client would otherwise retry for minutes behind its back.
      retryOptions: { autoRetry: false },
    });
    this.#bucket = storage.bucket(options.bucket);
  }

  /** Checks (or, on an emulator, creates) the bucket once. */
  #ensure(): Promise<void> {
    this.#ready ??= (async () => {
      try {
        const [exists] = await this.#bucket.exists();
        if (exists) return;
        if (!this.#emulator) {
          throw new StoreError(
            "open",
            this.uri,
            "not_found",
            `bucket "${this.#bucket.name}" does not exist (create it, and check GOOGLE_APPLICATION_CREDENTIALS)`,
          );
        }
        await this.#bucket.create().catch((err) => {
          if (httpCode(err) !== 409) throw err; // 409: created meanwhile
        });
      } catch (err) {
        this.#ready = undefined; // a later call tries again
        throw wrap("open", this.uri, err);
      }
    })();
    return this.#ready;
  }

  #name(key: string): string {
    checkKey(key);
    return joinKey(this.#prefix, key);
  }

  async put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    const name = this.#name(key);
    try {
      await this.#ensure();
      await this.#bucket.file(name).save(bytes, {
        resumable: false,
        contentType: "application/octet-stream",
        validation: "crc32c",
        preconditionOpts: options.ifAbsent ? { ifGenerationMatch: 0 } : undefined,
      });
    } catch (err) {
      throw wrap("put", key, err);
    }
  }

  async get(key: string): Promise<Uint8Array> {
    const name = this.#name(key);
    try {
      await this.#ensure();
      const [buf] = await this.#bucket.file(name).download({ validation: false });
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (err) {
      throw wrap("get", key, err);
    }
  }

  async read(key: string, start: number, end: number): Promise<Uint8Array> {
    if (end <= start) return new Uint8Array(0);
    const name = this.#name(key);
    try {
      await this.#ensure();
      // The client's `end` is inclusive.
      const [buf] = await this.#bucket.file(name).download({
        start,
        end: end - 1,
        validation: false,
      });
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (err) {
      throw wrap("read", key, err);
    }
  }

  async size(key: string): Promise<number> {
    const name = this.#name(key);
    try {
      await this.#ensure();
      const [meta] = await this.#bucket.file(name).getMetadata();
      return Number(meta.size);
    } catch (err) {
      throw wrap("size", key, err);
    }
  }

  async list(prefix: string): Promise<StoreEntry[]> {
    const full = this.#prefix ? `${this.#prefix}/${prefix}` : prefix;
    const cut = this.#prefix ? this.#prefix.length + 1 : 0;
    const out: StoreEntry[] = [];
    try {
      await this.#ensure();
      let pageToken: string | undefined;
      do {
        const [files, next] = await this.#bucket.getFiles({
          prefix: full,
          autoPaginate: false,
          maxResults: this.#pageSize,
          pageToken,
        });
        for (const f of files) out.push({ key: f.name.slice(cut), size: Number(f.metadata.size) });
        pageToken = (next as { pageToken?: string } | null)?.pageToken;
      } while (pageToken);
    } catch (err) {
      throw wrap("list", prefix, err);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    // Hadoop's GCS connector (Spark's output) leaves folder markers, keys ending
    // in "/", which list() returns: they can be deleted like any object.
    const name = key.endsWith("/") ? this.#name(key.slice(0, -1)) + "/" : this.#name(key);
    try {
      await this.#ensure();
      await this.#bucket.file(name).delete({ ignoreNotFound: true });
    } catch (err) {
      if (httpCode(err) === 404) return;
      throw wrap("delete", key, err);
    }
  }
}
