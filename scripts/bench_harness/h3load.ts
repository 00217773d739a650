/**
 * h3load: an HTTP/3 load client for the benchmark, written for this project because no HTTP/3
 * load generator is packaged here (h2load in Debian 12 is built without HTTP/3). It speaks
 * HTTP/3 through the project's own QUIC engine (src/quic/engine.ts → Deno.connectQuic, quinn)
 * and H3 framing/QPACK modules, like tests/helpers/h3_client.ts, but stripped to the loop a
 * load generator needs: `-c` connections, each with `-m` request streams in flight, every
 * stream slot sending GET, reading the response to FIN and sending the next, until `-D`
 * seconds have passed (or `-n` requests were made). With -D it connects and makes one request
 * per connection first, then starts the clock; requests that finish after the deadline are not
 * counted. With -n the clock starts once connected.
 *
 *   deno run --unstable-net --allow-net=127.0.0.1 --allow-read=CA_DIR scripts/bench_harness/h3load.ts \
 *     --port P --ca CA.pem [--host 127.0.0.1] [--server-name 127.0.0.1] [--authority H:P] \
 *     [-c 4] [-m 25] (-D SECONDS | -n REQUESTS) [--path /small] [--expect-bytes N]
 *
 * Prints one line `H3LOAD_JSON {...}`: completed requests, errors (connect failures, stream
 * failures, non-2xx/3xx statuses, bodies of the wrong length, timeouts), duration, body bytes,
 * latency p50/p99 (nearest rank over every completed request, µs) and this process's own CPU
 * seconds, so the harness can tell when the client rather than the proxy was the limit.
 * scripts/bench runs it under `taskset` on the load CPU, as it runs wrk and h2load.
 */

import process from "node:process";
import {
  connectQuic,
  type QuicConnection,
  type QuicRecvStream,
  type QuicSendStream,
} from "../../src/quic/engine.ts";
import {
  encodeFrame,
  encodeSettings,
  FrameReader,
  FrameType,
  Setting,
  StreamType,
} from "../../src/http/h3/frames.ts";
import { encodeFieldSection, QpackDecoder } from "../../src/http/h3/qpack.ts";
import { LatencyStats } from "./latency.ts";

interface Args {
  host: string;
  port: number;
  ca: string;
  serverName: string;
  authority: string;
  connections: number;
  streams: number;
  seconds?: number;
  requests?: number;
  path: string;
  expectBytes?: number;
  /** Per-request timeout (ms): a request still open this long after the deadline is an error. */
  timeoutMs: number;
}

function parse(argv: string[]): Args {
  const m = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("-")) throw new Error(`unexpected argument '${a}'`);
    const v = argv[++i];
    if (v === undefined) throw new Error(`${a} needs a value`);
    m.set(a, v);
  }
  const num = (k: string, d?: number) => {
    const v = m.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!(n > 0)) throw new Error(`${k} needs a positive number`);
    return n;
  };
  const port = num("--port");
  const ca = m.get("--ca");
  if (!port || !ca) throw new Error("--port and --ca are required");
  const host = m.get("--host") ?? "127.0.0.1";
  const seconds = num("-D");
  const requests = num("-n");
  if (!seconds === !requests) throw new Error("give exactly one of -D SECONDS and -n REQUESTS");
  return {
    host,
    port,
    ca,
    serverName: m.get("--server-name") ?? host,
    authority: m.get("--authority") ?? `${host}:${port}`,
    connections: num("-c", 1)!,
    streams: num("-m", 1)!,
    seconds,
    requests,
    path: m.get("--path") ?? "/",
    expectBytes: m.has("--expect-bytes") ? Number(m.get("--expect-bytes")) : undefined,
    timeoutMs: num("--timeout-ms", 10_000)!,
  };
}

/** User + system CPU of this process (every thread: V8, quinn's tokio runtime), in seconds. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Reads and drops everything on a stream the server opened (control, QPACK encoder). */
async function drain(s: QuicRecvStream): Promise<void> {
  let buf = new Uint8Array(4096);
  try {
    for (;;) {
      const got = await s.readInto(buf);
      if (!got) return;
      buf = new Uint8Array(got.buffer);
    }
  } catch { /* connection closed */ }
}

class Stats extends LatencyStats {
  requests = 0;
  errors = 0;
  statusErrors = 0;
  lengthErrors = 0;
  streamErrors = 0;
  connectErrors = 0;
  timeouts = 0;
  /** Requests that completed after the deadline (not counted). */
  late = 0;
  bytes = 0;
  firstError: string | undefined;

  fail(kind: "statusErrors" | "lengthErrors" | "streamErrors" | "connectErrors" | "timeouts", why: string) {
    this[kind]++;
    this.errors++;
    this.firstError ??= why;
  }
}

interface Conn {
  conn: QuicConnection;
  /**
   * Our control stream, kept referenced: a QuicSendStream that is garbage-collected is closed
   * (FIN), and closing the control stream is a connection error (H3_CLOSED_CRITICAL_STREAM).
   */
  control: QuicSendStream;
  headers: Uint8Array;
  decoder: QpackDecoder;
}

async function open(a: Args, caPem: string): Promise<Conn> {
  const { conn } = await connectQuic({
    hostname: a.host,
    port: a.port,
    serverName: a.serverName,
    caCerts: [caPem],
    alpn: ["h3"],
    maxIdleTimeoutMs: 30_000,
  });
  const hs = await conn.handshake;
  if (!hs) throw new Error("QUIC handshake failed");
  // Our control stream: SETTINGS with a QPACK table capacity of 0 (static table and literals).
  const control = await conn.openUni();
  await control.write(Uint8Array.of(StreamType.CONTROL));
  await control.write(encodeSettings([[Setting.MAX_FIELD_SECTION_SIZE, 1 << 16]]));
  (async () => {
    for (;;) {
      const s = await conn.acceptUni();
      if (!s) return;
      drain(s);
    }
  })();
  const headers = encodeFrame(
    FrameType.HEADERS,
    encodeFieldSection([
      [":method", "GET"],
      [":scheme", "https"],
      [":authority", a.authority],
      [":path", a.path],
      ["user-agent", "h3load"],
    ]),
  );
  const decoder = new QpackDecoder({
    maxTableCapacity: 0,
    maxBlockedStreams: 0,
    maxFieldSectionSize: 1 << 16,
  });
  return { conn, control, headers, decoder };
}

/** One request on its own stream: HEADERS + FIN, then the response to FIN. Returns status and body size. */
async function request(c: Conn): Promise<{ status: number; bytes: number }> {
  const s = await c.conn.openBidi();
  // Queued in order (HEADERS, then FIN); the response is read meanwhile.
  s.send.write(c.headers).catch(() => {});
  s.send.finish();
  const r = new FrameReader(s.recv, 1024);
  let status = 0;
  let bytes = 0;
  for (;;) {
    const h = await r.frameHeader();
    if (h === null) break;
    if (h.type === FrameType.DATA) {
      bytes += h.length;
      await r.discard(h.length);
    } else if (h.type === FrameType.HEADERS) {
      const d = c.decoder.decode(await r.payload(h.length), Number(s.recv.id));
      if (!("fields" in d) || !d.fields) throw new Error("response field section could not be decoded");
      if (status === 0) {
        const st = Number(d.fields.find((f) => f[0] === ":status")?.[1] ?? "0");
        if (st >= 200) status = st;
      }
    } else await r.discard(h.length);
  }
  return { status, bytes };
}

async function main(): Promise<number> {
  let a: Args;
  try {
    a = parse(Deno.args);
  } catch (e) {
    console.error(`h3load: ${e instanceof Error ? e.message : e}`);
    return 2;
  }
  const caPem = await Deno.readTextFile(a.ca);
  const stats = new Stats();
  const t0 = performance.now();
  const settled = await Promise.allSettled(Array.from({ length: a.connections }, () => open(a, caPem)));
  const conns: Conn[] = [];
  for (const s of settled) {
    if (s.status === "fulfilled") conns.push(s.value);
    else stats.fail("connectErrors", `connect: ${s.reason instanceof Error ? s.reason.message : s.reason}`);
  }
  // With -D, one request per connection before the clock starts: the handshake is confirmed
  // both ways and the path is warm, so a 1 s smoke round measures requests, not connection
  // set-up. (With -n, e.g. the one big download, the requests themselves are what is timed.)
  // Bounded: a connection whose first answer takes longer than --timeout-ms is closed.
  const warmed = new Set<Conn>();
  const warmTimer = setTimeout(() => {
    for (const c of conns) if (!warmed.has(c)) c.conn.close(0x100, "h3load: no first answer");
  }, a.timeoutMs);
  const warm = a.seconds
    ? await Promise.allSettled(conns.map((c) => request(c).then(() => void warmed.add(c))))
    : [];
  clearTimeout(warmTimer);
  for (let i = warm.length - 1; i >= 0; i--) {
    const w = warm[i];
    if (w.status === "rejected") {
      stats.fail(
        "connectErrors",
        `first request: ${w.reason instanceof Error ? w.reason.message : w.reason}`,
      );
      conns.splice(i, 1);
    }
  }
  const connectMs = performance.now() - t0;

  const cpu0 = cpuSeconds();
  const start = performance.now();
  const deadline = a.seconds ? start + a.seconds * 1000 : Infinity;
  let budget = a.requests ?? Infinity;
  // A request still open this long after the deadline (or after it started, with -n) is a timeout:
  // the connections are closed then, which ends every pending read.
  const hardStop = a.seconds ? deadline + a.timeoutMs : undefined;
  let stopping = false;
  const slot = async (c: Conn) => {
    while (!stopping && budget > 0 && performance.now() < deadline) {
      budget--;
      const t = performance.now();
      try {
        const res = await request(c);
        const end = performance.now();
        if (end > deadline) {
          stats.late++; // finished after the measured window: not counted
          return;
        }
        if (res.status < 200 || res.status >= 400) {
          stats.fail("statusErrors", `status ${res.status}`);
          continue;
        }
        if (a.expectBytes !== undefined && res.bytes !== a.expectBytes) {
          stats.fail("lengthErrors", `body of ${res.bytes} bytes, expected ${a.expectBytes}`);
          continue;
        }
        stats.requests++;
        stats.bytes += res.bytes;
        stats.latency(end - t);
      } catch (e) {
        if (stopping) {
          stats.fail("timeouts", "request still open at the hard stop");
          return;
        }
        stats.fail("streamErrors", `stream: ${e instanceof Error ? e.message : e}`);
        if (c.conn.isClosed) return;
      }
    }
  };
  const timer = setTimeout(() => {
    stopping = true;
    for (const c of conns) c.conn.close(0x100, "h3load hard stop");
  }, hardStop !== undefined ? hardStop - start : 600_000);
  await Promise.all(conns.flatMap((c) => Array.from({ length: a.streams }, () => slot(c))));
  clearTimeout(timer);
  const end = performance.now();
  const seconds = a.seconds ?? (end - start) / 1000;
  const cpu = cpuSeconds() - cpu0;
  for (const c of conns) c.conn.close(0x100, "");
  const out = {
    requests: stats.requests,
    errors: stats.errors,
    status_errors: stats.statusErrors,
    length_errors: stats.lengthErrors,
    stream_errors: stats.streamErrors,
    connect_errors: stats.connectErrors,
    timeouts: stats.timeouts,
    late: stats.late,
    connections: conns.length,
    connect_ms: Math.round(connectMs),
    seconds,
    bytes: stats.bytes,
    rps: stats.requests / seconds,
    p50_us: stats.percentileUs(50),
    p99_us: stats.percentileUs(99),
    cpu_seconds: cpu,
    first_error: stats.firstError ?? null,
  };
  console.log(`H3LOAD_JSON ${JSON.stringify(out)}`);
  return stats.requests > 0 ? 0 : 1;
}

if (import.meta.main) {
  const code = await main();
  // Pending accept loops on closed connections must not keep the process alive.
  Deno.exit(code);
}
