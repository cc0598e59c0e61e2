/**
 * Watches the pipeline file for saves. The folder is watched, not the file:
 * editors often save by writing a temporary file and renaming it over the
 * original, which a watch on the file itself would lose. Events for the file
 * are debounced (a save is often several events) and a save that leaves the
 * text as it was (a `touch`, a save without edits) is not reported.
 */
import { basename, dirname, resolve } from "node:path";
import { log as rootLog, type Logger } from "../log.ts";

export interface WatchOptions {
  /** Quiet time after the last event before `onChange` runs. Default 300 ms. */
  readonly debounceMs?: number;
  /** Default: the process logger with `component: "config"`. */
  readonly log?: Logger;
}

export interface FileWatch {
  /** Stops watching. */
  close(): void;
}

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

/**
 * Calls `onChange` after each save of `file` that changed its text (and
 * once when a missing file appears). `onChange` calls never overlap.
 *
 * @example
 * const w = await watchFile("pipeline.yaml", () => reloads.reload("watch"));
 * // … w.close();
 */
export async function watchFile(
  file: string,
  onChange: () => Promise<unknown> | void,
  opts: WatchOptions = {},
): Promise<FileWatch> {
  const debounceMs = opts.debounceMs ?? 300;
  const log = opts.log ?? rootLog.child({ component: "config" });
  const path = resolve(file);
  const name = basename(path);
  let lastText = await readOrUndefined(path);
  const watcher = Deno.watchFs(dirname(path), { recursive: false });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let closed = false;

  const fire = () => {
    timer = undefined;
    running = running.then(async () => {
      if (closed) return;
      const text = await readOrUndefined(path);
      // Mid-rename the file may be missing for a moment: the next event comes.
      if (text === undefined || text === lastText) return;
      lastText = text;
      await onChange();
    }).catch((error) => log.error("pipeline file change could not be handled", { error }));
  };

  (async () => {
    try {
      for await (const event of watcher) {
        if (!event.paths.some((p) => basename(p) === name)) continue;
        if (timer !== undefined) clearTimeout(timer);
        timer = setTimeout(fire, debounceMs);
      }
    } catch (error) {
      if (!closed) log.error("watching the pipeline file stopped", { file, error });
    }
  })();

  return {
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      try {
        watcher.close();
      } catch { /* already closed */ }
    },
  };
}
