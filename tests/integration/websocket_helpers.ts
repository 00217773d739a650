/**
 * Test peers for the WebSocket tests: the npm `ws` backend (tests/fixtures/ws_server.mjs, h1 or
 * h2c) and the line-driven `ws` client (tests/fixtures/ws_client.mjs, over HTTP/1.1 Upgrade or an
 * RFC 8441 HTTP/2 CONNECT), each a node child process; every wait is bounded.
 */

const ROOT = new URL("../..", import.meta.url).pathname;

export interface WsServer {
  port: number;
  stats(): Promise<WsServerStats>;
  stop(): Promise<void>;
}

export interface WsServerStats {
  connections: number;
  open: number;
  closes: Array<{ code: number; reason: string }>;
  flood: { sent: number; bufferedAmount: number; written: number };
}

/** Reads JSON lines from a child's stdout. */
class Lines {
  readonly #lines: Array<Record<string, unknown>> = [];
  readonly #waiters: Array<() => void> = [];
  #ended = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    (async () => {
      let buf = "";
      const dec = new TextDecoder();
      try {
        for await (const chunk of stream) {
          buf += dec.decode(chunk, { stream: true });
          let i;
          while ((i = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (line) this.#lines.push(JSON.parse(line));
            for (const w of this.#waiters.splice(0)) w();
          }
        }
      } finally {
        this.#ended = true;
        for (const w of this.#waiters.splice(0)) w();
      }
    })().catch(() => {});
  }

  /** The first line (not yet taken) matching `pred`, within `timeoutMs`. */
  async take(pred: (o: Record<string, unknown>) => boolean, timeoutMs: number, what: string) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#lines.findIndex(pred);
      if (i >= 0) return this.#lines.splice(i, 1)[0];
      if (this.#ended) throw new Error(`peer exited before ${what}; saw ${JSON.stringify(this.#lines)}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; saw ${JSON.stringify(this.#lines)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }
}

function spawnNode(script: string, arg: unknown, stdin: boolean): { child: Deno.ChildProcess; lines: Lines } {
  const child = new Deno.Command("node", {
    args: [`${ROOT}tests/fixtures/${script}`, JSON.stringify(arg)],
    stdout: "piped",
    stderr: "inherit",
    stdin: stdin ? "piped" : "null",
  }).spawn();
  return { child, lines: new Lines(child.stdout) };
}

async function kill(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch { /* exited */ }
  await child.status;
}

export async function startWsServer(mode: "h1" | "h2c" = "h1"): Promise<WsServer> {
  const { child, lines } = spawnNode("ws_server.mjs", { mode }, false);
  let first;
  try {
    first = await lines.take((o) => typeof o.port === "number", 10_000, "the ws server's port");
  } catch (e) {
    await kill(child);
    throw e;
  }
  const statsPort = first.stats as number;
  return {
    port: first.port as number,
    async stats() {
      const r = await fetch(`http://127.0.0.1:${statsPort}/stats`);
      return await r.json() as WsServerStats;
    },
    stop: () => kill(child),
  };
}

export interface WsClientOptions {
  url: string;
  transport?: "h1" | "h2";
  protocols?: string[];
  deflate?: boolean;
}

export class WsClient {
  readonly #child: Deno.ChildProcess;
  readonly #lines: Lines;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  /** The first line: {"event":"open",…} or {"event":"failed",…}. */
  opened!: Record<string, unknown>;

  private constructor(opts: WsClientOptions) {
    const { child, lines } = spawnNode("ws_client.mjs", opts, true);
    this.#child = child;
    this.#lines = lines;
    this.#stdin = child.stdin.getWriter();
  }

  static async connect(opts: WsClientOptions): Promise<WsClient> {
    const c = new WsClient(opts);
    try {
      c.opened = await c.#lines.take((o) => o.event === "open" || o.event === "failed", 10_000, "open");
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  get pid(): number {
    return this.#child.pid;
  }

  async send(cmd: Record<string, unknown>): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(cmd) + "\n"));
  }

  /** Sends a command and waits for its answer (a line with the same op). */
  async ask(cmd: Record<string, unknown>, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    await this.send(cmd);
    const r = await this.#lines.take((o) => o.op === cmd.op, timeoutMs, `answer to ${cmd.op}`);
    if (r.error) throw new Error(`${cmd.op} failed in the client: ${r.error}`);
    return r;
  }

  /** Waits for the close event. */
  closed(timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return this.#lines.take((o) => o.event === "close", timeoutMs, "the close event");
  }

  async stop(): Promise<void> {
    try {
      await this.#stdin.close();
    } catch { /* closed */ }
    await kill(this.#child);
  }
}

/** Resident set size of a process (kB), from /proc/<pid>/status. */
export async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

/** Fetches /metrics and returns the value of one series (0 when absent). */
export async function metricValue(adminUrl: string, series: string): Promise<number> {
  const text = await (await fetch(adminUrl)).text();
  for (const line of text.split("\n")) {
    if (line.startsWith(series + " ")) return Number(line.slice(series.length + 1));
  }
  return 0;
}
