/**
 * Small pieces many integration tests need: a digest, a port free for TCP and UDP, stopping a
 * child process within a bound, summing a family from the gateway's /metrics, counting a
 * process's open descriptors, and bounding a wait or waiting (bounded) for a condition.
 */

/** Lower-case hex SHA-256 of `bytes`. */
export async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return [...d].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The parts one after another in one buffer. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A port free for both TCP and UDP on 127.0.0.1 (HTTP/3 servers such as Caddy bind both). */
export function freeTcpUdpPort(): number {
  for (let i = 0; i < 20; i++) {
    const tcp = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (tcp.addr as Deno.NetAddr).port;
    try {
      Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port }).close();
      tcp.close();
      return port;
    } catch {
      tcp.close();
    }
  }
  throw new Error("no port free for both TCP and UDP in 20 tries");
}

/** SIGTERM, then SIGKILL after 5 s if it is still there; resolves once it exited. */
export async function stopChild(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* exited */ }
  const t = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 5000);
  await child.status;
  clearTimeout(t);
}

/** Sum of the samples on the admin listener's /metrics whose line matches `re`. */
export async function metricSum(adminPort: number, re: RegExp): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  let sum = 0;
  for (const line of text.split("\n")) {
    if (re.test(line)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** Open file descriptors of a process (sockets, the QUIC endpoints' UDP sockets, files). */
export function openDescriptors(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

/** `p`, or a rejection naming `what` after `ms` (a hang is a failure, not a slow pass). */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => timer = setTimeout(() => rej(new Error(`timed out: ${what}`)), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `cond` every 100 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for: ${what}`);
}
