/**
 * Opens COUNT keep-alive connections to 127.0.0.1:PORT, sends one GET PATH on each, reads the
 * answer, and keeps every connection open and idle. Prints one JSON line
 * `{"open":N,"failed":M,"ms":T}` once all are settled, then waits for stdin to close (or
 * SIGTERM) and closes them. Run by the benchmark, pinned to the load core:
 *
 *   deno run --allow-net=127.0.0.1 scripts/bench_harness/idle_conns.ts PORT COUNT PATH [CONCURRENCY]
 */

const [portArg, countArg, path = "/small", concArg = "200"] = Deno.args;
const port = Number(portArg);
const count = Number(countArg);
const concurrency = Math.max(1, Number(concArg));
const HEAD_END = new Uint8Array([13, 10, 13, 10]);
const request = new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);

function indexOfSeq(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** One connection: request, whole answer (Content-Length framing), then left idle. */
async function openOne(): Promise<Deno.TcpConn | null> {
  let conn: Deno.TcpConn | undefined;
  const timer = setTimeout(() => conn?.close(), 30_000);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(request);
    let buf = new Uint8Array(0);
    const chunk = new Uint8Array(16384);
    for (;;) {
      const n = await conn.read(chunk);
      if (n === null) throw new Error("closed");
      const next = new Uint8Array(buf.length + n);
      next.set(buf);
      next.set(chunk.subarray(0, n), buf.length);
      buf = next;
      const end = indexOfSeq(buf, HEAD_END);
      if (end < 0) continue;
      const head = new TextDecoder().decode(buf.subarray(0, end));
      if (!/^HTTP\/1\.1 200 /.test(head)) throw new Error(head.split("\r\n")[0]);
      const cl = head.match(/\r\ncontent-length:\s*(\d+)/i);
      if (!cl) throw new Error("no content-length");
      if (buf.length >= end + 4 + Number(cl[1])) break;
    }
    clearTimeout(timer);
    return conn;
  } catch {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* closed */ }
    return null;
  }
}

const start = performance.now();
const open: Deno.TcpConn[] = [];
let failed = 0;
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      next++;
      const c = await openOne();
      if (c) open.push(c);
      else failed++;
    }
  }),
);
console.log(JSON.stringify({ open: open.length, failed, ms: Math.round(performance.now() - start) }));

const closeAll = () => {
  for (const c of open) {
    try {
      c.close();
    } catch { /* closed */ }
  }
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", closeAll);
// Wait for the harness to close our stdin (or die, which closes it too).
const sink = new Uint8Array(64);
while ((await Deno.stdin.read(sink)) !== null) { /* keep waiting */ }
closeAll();
