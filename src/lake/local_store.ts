/**
 * An `ObjectStore` over a local folder. A put writes a hidden temporary file in
 * the target folder, fsyncs it, then renames it into place (or hard-links it,
 * for `ifAbsent`, since link fails atomically when the name exists), then
 * fsyncs the folder: after a crash the key holds the old bytes or the new
 * ones, never a prefix.
 */
import { StoreError, type StoreOp } from "./errors.ts";
import { checkKey, type ObjectStore, type PutOptions, type StoreEntry } from "./store.ts";

const TMP_PREFIX = ".tmp-";

function wrap(op: StoreOp, key: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  if (err instanceof Deno.errors.NotFound) {
    return new StoreError(op, key, "not_found", "no such object", { cause: err });
  }
  if (err instanceof Deno.errors.AlreadyExists) {
    return new StoreError(op, key, "exists", "object already exists", { cause: err });
  }
  const detail = err instanceof Error ? err.message : String(err);
  return new StoreError(op, key, "fault", detail, { cause: err });
}

async function fsyncDir(path: string): Promise<void> {
  try {
    using dir = await Deno.open(path, { read: true });
    await dir.sync();
  } catch {
    // Some filesystems refuse fsync on a folder; the rename is still atomic.
  }
}

export class LocalStore implements ObjectStore {
  readonly uri: string;
  readonly #root: string;

  /** `root` is an absolute folder; it is created on first write. */
  constructor(root: string) {
    this.#root = root.replace(/\/+$/, "") || "/";
    this.uri = `file://${this.#root}`;
  }

  #path(key: string): string {
    checkKey(key);
    return `${this.#root}/${key}`;
  }

  async put(key: string, bytes: Uint8Array, options: PutOptions = {}): Promise<void> {
    const path = this.#path(key);
    const dir = path.slice(0, path.lastIndexOf("/"));
    const tmp = `${dir}/${TMP_PREFIX}${crypto.randomUUID()}`;
    try {
      await Deno.mkdir(dir, { recursive: true });
      {
        using file = await Deno.open(tmp, { write: true, createNew: true });
        let written = 0;
        while (written < bytes.length) written += await file.write(bytes.subarray(written));
        await file.sync();
      }
      if (options.ifAbsent) {
        await Deno.link(tmp, path);
        await Deno.remove(tmp);
      } else {
        await Deno.rename(tmp, path);
      }
      await fsyncDir(dir);
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      throw wrap("put", key, err);
    }
  }

  async get(key: string): Promise<Uint8Array> {
    try {
      return await Deno.readFile(this.#path(key));
    } catch (err) {
      throw wrap("get", key, err);
    }
  }

  async read(key: string, start: number, end: number): Promise<Uint8Array> {
    try {
      using file = await Deno.open(this.#path(key), { read: true });
      const size = (await file.stat()).size;
      const to = Math.min(end, size);
      const out = new Uint8Array(Math.max(0, to - start));
      await file.seek(start, Deno.SeekMode.Start);
      let got = 0;
      while (got < out.length) {
        const n = await file.read(out.subarray(got));
        if (n === null) break;
        got += n;
      }
      return got === out.length ? out : out.subarray(0, got);
    } catch (err) {
      throw wrap("read", key, err);
    }
  }

  async size(key: string): Promise<number> {
    try {
      const st = await Deno.stat(this.#path(key));
      if (!st.isFile) throw new Deno.errors.NotFound(key);
      return st.size;
    } catch (err) {
      throw wrap("size", key, err);
    }
  }

  async list(prefix: string): Promise<StoreEntry[]> {
    // Walk only the deepest folder the prefix names, then filter by the rest.
    const cut = prefix.lastIndexOf("/");
    const base = cut < 0 ? "" : prefix.slice(0, cut);
    const out: StoreEntry[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(rel ? `${this.#root}/${rel}` : this.#root));
      } catch (err) {
        if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) return;
        throw err;
      }
      for (const e of entries) {
        if (e.name.startsWith(TMP_PREFIX)) continue;
        const key = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory) {
          if (key.startsWith(prefix) || prefix.startsWith(key + "/")) await walk(key);
        } else if (e.isFile && key.startsWith(prefix)) {
          const st = await Deno.stat(`${this.#root}/${key}`).catch(() => undefined);
          if (st) out.push({ key, size: st.size });
        }
      }
    };
    try {
      await walk(base);
    } catch (err) {
      throw wrap("list", prefix, err);
    }
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(key: string): Promise<void> {
    try {
      await Deno.remove(this.#path(key));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw wrap("delete", key, err);
    }
  }
}
