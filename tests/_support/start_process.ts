/**
 * Test support for `main.ts start` as a child process: spawn it on a
 * pipeline file with its JSON log going to a file, poll its API, read its
 * log lines back, and stream live events into a topic meanwhile.
 */
import type postgres from "postgres";
import { createProducer } from "../../src/kafka/producer.ts";
import { createGenerator, type GeneratedItem } from "../../src/simulator/generator.ts";
import { kafkaBrokers } from "./services.ts";

const REPO = new URL("../..", import.meta.url).pathname;

/** A loopback port free right now (for a child's API or database). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

export interface StartProcess {
  readonly proc: Deno.ChildProcess;
  readonly logFile: string;
  readonly api: string;
  /** The JSON log lines written so far. */
  logLines(): Promise<Record<string, unknown>[]>;
  /** The last `n` log lines, debug-level flush lines left out: for failure messages. */
  tail(n?: number): string;
  get(path: string): Promise<{ status: number; body: Record<string, unknown> }>;
  text(path: string): Promise<string>;
  /** SIGTERM, and the exit code. */
  stop(): Promise<number>;
  kill(): void;
}

export function spawnStart(
  config: string,
  logFile: string,
  apiPort: number,
  env: Record<string, string> = {},
): StartProcess {
  const out = Deno.openSync(logFile, { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  let text = "";
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "start", "--config", config],
    cwd: REPO,
    env: { LOG_LEVEL: "info", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Kept in memory as it comes (a piped file is only complete at the end), and in the file.
  (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      out.writeSync(enc.encode(chunk));
    }
  })().catch(() => {}).finally(() => out.close());
  const api = `http://127.0.0.1:${apiPort}`;
  let stopping = false;
  proc.status.then((st) => {
    if (!stopping) exitedEarly = `start exited by itself (code ${st.code}):\n${text.slice(-3000)}`;
  });
  return {
    proc,
    logFile,
    api,
    tail(n = 40) {
      return text.split("\n").filter((l) => !l.includes('"msg":"speed flush"')).slice(-n)
        .map((l) => l.slice(0, 600)).join("\n");
    },
    logLines() {
      return Promise.resolve(
        text.split("\n").filter((l) => l.startsWith("{") && l.endsWith("}")).map((l) =>
          JSON.parse(l)
        ),
      );
    },
    async get(path) {
      const r = await fetch(api + path);
      return { status: r.status, body: await r.json() };
    },
    async text(path) {
      const r = await fetch(api + path);
      return await r.text();
    },
    async stop() {
      stopping = true;
      try {
        proc.kill("SIGTERM");
      } catch { /* gone */ }
      return (await proc.status).code;
    },
    kill() {
      stopping = true;
      try {
        proc.kill("SIGKILL");
      } catch { /* gone */ }
    },
  };
}

/** Set when a spawned `start` exits without being asked to: waiting for it is pointless. */
let exitedEarly: string | undefined;

/**
 * Polls `f` until it returns a value (not undefined), or fails after `ms`,
 * or at once when a spawned `start` has exited by itself.
 */
export async function until<T>(
  what: string,
  f: () => Promise<T | undefined>,
  ms: number,
): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  while (Date.now() < end) {
    if (exitedEarly) {
      const why = exitedEarly;
      exitedEarly = undefined;
      throw new Error(`gave up waiting for ${what}: ${why}`);
    }
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
}

/** Events produced live into a topic (event time = wall clock), until stopped. */
export interface LiveStream {
  /** Stops producing; resolves with every item produced. */
  stop(): Promise<GeneratedItem[]>;
  readonly produced: () => number;
}

export async function streamLive(
  topic: string,
  o: { seed: number; devices: number; antennas: number; perSecond: number; maxLatenessMs: number },
): Promise<LiveStream> {
  const producer = await createProducer({ brokers: kafkaBrokers(), clientId: "live-stream" });
  const gen = createGenerator({
    seed: o.seed,
    devices: o.devices,
    antennas: o.antennas,
    lateShare: 0.1,
    maxLatenessMs: o.maxLatenessMs,
  });
  const items: GeneratedItem[] = [];
  let running = true;
  const loop = (async () => {
    const every = 100;
    const per = Math.max(1, Math.round((o.perSecond * every) / 1000));
    while (running) {
      const batch = Array.from({ length: per }, () => gen.next());
      await producer.send(topic, batch.map((i) => ({ key: i.key, value: i.value })));
      items.push(...batch);
      await new Promise((r) => setTimeout(r, every));
    }
  })();
  return {
    produced: () => items.length,
    async stop() {
      running = false;
      await loop;
      await producer.close();
      return items;
    },
  };
}

/**
 * True once every partition of `topic` has a watermark past the end of the
 * last window among `keys` (`type|window start ms|id` or `window start ms|id`):
 * the `bytes` view then shows every partition's part of every window.
 */
export async function closed(
  sql: postgres.Sql,
  topic: string,
  keys: ReadonlyMap<string, unknown>,
  windowMs = 300_000,
): Promise<true | undefined> {
  let last = -Infinity;
  for (const k of keys.keys()) {
    const parts = k.split("|");
    const w = Number(parts[0]) || Number(parts[1]);
    if (w > last) last = w;
  }
  const [{ wm, n }] = await sql`SELECT min(watermark) AS wm, count(*)::int AS n
    FROM speed_progress WHERE topic = ${topic}`;
  return n > 0 && wm && (wm as Date).getTime() >= last + windowMs ? true : undefined;
}
