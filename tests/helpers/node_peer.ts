/** Starts a node test peer script that prints {"port":N} on its first stdout line. */

const ROOT = new URL("../..", import.meta.url).pathname;

export interface NodePeer {
  port: number;
  /** The whole first stdout line (at least {"port":N}; a script may print more). */
  info: Record<string, unknown>;
  child: Deno.ChildProcess;
  stop(): Promise<void>;
}

/** Killed (and this throws) when it printed no line within `timeoutMs`. */
export async function startNodePeer(script: string, args: string[], timeoutMs = 10_000): Promise<NodePeer> {
  const child = new Deno.Command("node", {
    args: [`${ROOT}tests/fixtures/${script}`, ...args],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${script} exited before listening`);
    buf += dec.decode(value);
  }
  clearTimeout(timer);
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const info = JSON.parse(buf.split("\n")[0]);
  let stopped = false;
  return {
    port: info.port as number,
    info,
    child,
    async stop() {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
    },
  };
}
