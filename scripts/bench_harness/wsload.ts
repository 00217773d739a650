/**
 * wsload: a WebSocket echo load client for the benchmark (nothing packaged here loads
 * WebSockets). `-c` connections, each opened with an RFC 6455 Upgrade (the 101 and its
 * Sec-WebSocket-Accept checked), then a ping-pong loop: one masked message of `-s` bytes, wait
 * for the whole echo, send the next, until `-D` seconds have passed. Raw TCP (Deno.connect), one
 * prebuilt frame per connection, no allocation per message beyond reads, so the client stays
 * cheap next to the proxy. Messages that complete after the deadline are not counted.
 *
 *   deno run --allow-net=127.0.0.1 scripts/bench_harness/wsload.ts --port P [--path /ws] \
 *     [-c 50] [-s 64] -D SECONDS
 *
 * Prints one line `WSLOAD_JSON {...}`: round trips completed, errors (failed handshakes, closed
 * or broken connections, wrong echoes), duration, latency p50/p99 (µs, nearest rank) and this
 * process's CPU seconds. scripts/bench runs it under `taskset` on the load CPU, like wrk.
 */

import process from "node:process";
import { LatencyStats } from "./latency.ts";

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
/** base64(SHA-1(KEY + RFC 6455 GUID)), the example of RFC 6455 §1.3. */
const ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

interface Args {
  port: number;
  path: string;
  connections: number;
  size: number;
  seconds: number;
}

function parse(argv: string[]): Args {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    if (argv[i + 1] === undefined) throw new Error(`${argv[i]} needs a value`);
    m.set(argv[i], argv[i + 1]);
  }
  const num = (k: string, d?: number) => {
    const v = m.has(k) ? Number(m.get(k)) : d;
    if (v === undefined || !(v > 0)) throw new Error(`${k} needs a positive number`);
    return v;
  };
  const size = num("-s", 64);
  if (size > 65535) throw new Error("-s: at most 65535 bytes");
  return {
    port: num("--port"),
    path: m.get("--path") ?? "/ws",
    connections: num("-c", 50),
    size,
    seconds: num("-D"),
  };
}

/** A masked text frame (FIN, opcode 1) carrying `size` bytes of 'x'. */
function frame(size: number): Uint8Array {
  const head = size < 126 ? 2 : 4;
  const out = new Uint8Array(head + 4 + size);
  out[0] = 0x81;
  if (size < 126) out[1] = 0x80 | size;
  else {
    out[1] = 0x80 | 126;
    out[2] = size >> 8;
    out[3] = size & 0xff;
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, head);
  for (let i = 0; i < size; i++) out[head + 4 + i] = 0x78 ^ mask[i & 3];
  return out;
}

class Stats extends LatencyStats {
  messages = 0;
  errors = 0;
  firstError: string | undefined;
  fail(why: string): void {
    this.errors++;
    this.firstError ??= why;
  }
}

/** Reads until `buf` holds at least `n` bytes past `have`; returns the new fill level, or -1 at EOF. */
async function fill(conn: Deno.Conn, buf: Uint8Array, have: number, n: number): Promise<number> {
  while (have < n) {
    const got = await conn.read(buf.subarray(have));
    if (got === null) return -1;
    have += got;
  }
  return have;
}

async function handshake(a: Args): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: a.port });
  conn.setNoDelay(true);
  const req = `GET ${a.path} HTTP/1.1\r\nHost: 127.0.0.1:${a.port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
  await conn.write(new TextEncoder().encode(req));
  const buf = new Uint8Array(4096);
  let have = 0;
  for (;;) {
    const got = await conn.read(buf.subarray(have));
    if (got === null) throw new Error("closed during the handshake");
    have += got;
    const text = new TextDecoder().decode(buf.subarray(0, have));
    const end = text.indexOf("\r\n\r\n");
    if (end < 0) {
      if (have === buf.length) throw new Error("handshake answer too long");
      continue;
    }
    if (!/^HTTP\/1\.1 101 /.test(text)) throw new Error(`handshake: ${text.split("\r\n")[0]}`);
    const accept = text.slice(0, end).match(/^sec-websocket-accept:\s*(\S+)/im)?.[1];
    if (accept !== ACCEPT) throw new Error(`handshake: Sec-WebSocket-Accept ${accept ?? "missing"}`);
    if (end + 4 !== have) throw new Error("data after the 101 before any message was sent");
    return conn;
  }
}

async function main(): Promise<number> {
  let a: Args;
  try {
    a = parse(Deno.args);
  } catch (e) {
    console.error(`wsload: ${e instanceof Error ? e.message : e}`);
    return 2;
  }
  const stats = new Stats();
  const settled = await Promise.allSettled(Array.from({ length: a.connections }, () => handshake(a)));
  const conns: Deno.Conn[] = [];
  for (const s of settled) {
    if (s.status === "fulfilled") conns.push(s.value);
    else stats.fail(`connect: ${s.reason instanceof Error ? s.reason.message : s.reason}`);
  }
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const deadline = start + a.seconds * 1000;
  const echoLen = (a.size < 126 ? 2 : 4) + a.size;
  let stopping = false;
  const loop = async (conn: Deno.Conn) => {
    const out = frame(a.size);
    const buf = new Uint8Array(Math.max(4096, echoLen * 2));
    try {
      while (!stopping && performance.now() < deadline) {
        const t = performance.now();
        await conn.write(out);
        const have = await fill(conn, buf, 0, echoLen);
        if (have < 0) {
          stats.fail("connection closed by the peer");
          return;
        }
        // One unmasked text frame of exactly `size` bytes, and nothing after it.
        if (have !== echoLen || buf[0] !== 0x81 || (buf[1] & 0x80) !== 0) {
          stats.fail(`unexpected echo (${have} bytes, first 0x${buf[0].toString(16)})`);
          return;
        }
        const end = performance.now();
        if (end > deadline) return;
        stats.messages++;
        stats.latency(end - t);
      }
    } catch (e) {
      stats.fail(
        stopping ? "no echo 10 s after the deadline" : `connection: ${e instanceof Error ? e.message : e}`,
      );
    }
  };
  // A connection still waiting 10 s after the deadline is an error; closing it ends the wait.
  const timer = setTimeout(() => {
    stopping = true;
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  }, a.seconds * 1000 + 10_000);
  await Promise.all(conns.map(loop));
  clearTimeout(timer);
  const cpu = process.cpuUsage(cpu0);
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
  const out = {
    messages: stats.messages,
    errors: stats.errors,
    connections: conns.length,
    seconds: a.seconds,
    rps: stats.messages / a.seconds,
    p50_us: stats.percentileUs(50),
    p99_us: stats.percentileUs(99),
    cpu_seconds: (cpu.user + cpu.system) / 1e6,
    first_error: stats.firstError ?? null,
  };
  console.log(`WSLOAD_JSON ${JSON.stringify(out)}`);
  return stats.messages > 0 ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main());
