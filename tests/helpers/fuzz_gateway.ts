/**
 * The live-gateway side of the wire fuzz tests (tests/attacks/wire_fuzz.test.ts,
 * h3_backend_fuzz.test.ts): the gateway they run (an http listener in front of one backend),
 * a raw client connection that sends bytes and collects the answer until the gateway ends it, and
 * the rounds of requests to a hostile backend with the checks every round must pass.
 */

import assert from "node:assert/strict";
import { configHead, type GatewayProcess, startGateway } from "./gateway.ts";
import { concat } from "./common.ts";
import { inBatches, latin1, tally } from "./fuzz.ts";
import { assertSettled } from "./settled.ts";

/** Rounds per fuzz run, and how many run at once (each on its own connection). */
export const ROUNDS = 400;
export const CONCURRENCY = 20;
/** A mangled connection must be ended by the gateway within this (its body timeout is 2 s). */
export const END_WITHIN_MS = 10_000;

/**
 * `backendTls`: the backend's tls table line (an h3 backend needs its CA and name). gRPC calls get
 * at most 300 ms (grpc_max_timeout), so a test can have a deadline end a call mid-response.
 */
export function fuzzGatewayConfig(origin: string, protocol = "h1", backendTls = ""): string {
  return `${configHead()}[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
grpc_max_timeout = "300ms"
header_timeout = "2s"
body_timeout = "2s"
max_body_size = "64KiB"
  [[listeners.routes]]
  host = "origin"
  pool = "origin"
  [[listeners.routes]]
  respond = { status = 200, body = "gateway ok\\n" }
[[pools]]
name = "origin"
response_timeout = "1s"
  [[pools.backends]]
  address = "${origin}"
  protocol = "${protocol}"
  ${backendTls}
`;
}

/** Quiet this long after the last byte from the gateway: it has answered what it will. */
const QUIET_MS = 250;

/**
 * Writes `bytes` and reads what the gateway answers. Once it has been quiet for QUIET_MS (or has
 * closed), half-closes: from then on the gateway must end the connection within END_WITHIN_MS.
 * (Half-closing at once would test less: the gateway may drop what it queued for a client that
 * said it is gone.)
 */
export async function exchange(
  port: number,
  bytes: Uint8Array,
): Promise<{ out: Uint8Array; ended: boolean }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const parts: Uint8Array[] = [];
  let ended = false;
  let halfClosed = false;
  let timedOut = false;
  let deadline: ReturnType<typeof setTimeout> | undefined;
  let quiet: ReturnType<typeof setTimeout> | undefined;
  const closeWrite = () => {
    if (halfClosed) return;
    halfClosed = true;
    conn.closeWrite().catch(() => {});
    deadline = setTimeout(() => {
      timedOut = true;
      try {
        conn.close();
      } catch { /* closed */ }
    }, END_WITHIN_MS);
  };
  const rearm = () => {
    clearTimeout(quiet);
    quiet = setTimeout(closeWrite, QUIET_MS);
  };
  try {
    // The gateway may answer and close before all is written (a refused head): that is fine.
    await (async () => {
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    })().catch(() => {});
    rearm();
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) {
        ended = true;
        break;
      }
      parts.push(buf.slice(0, n));
      if (!halfClosed) rearm();
    }
  } catch {
    ended = !timedOut; // reset by the gateway: ended too; closed by our deadline: not
  } finally {
    clearTimeout(quiet);
    clearTimeout(deadline);
    try {
      conn.close();
    } catch { /* closed by the deadline or the gateway */ }
  }
  return { out: concat(parts), ended };
}

/** Every response in an HTTP/1.1 answer stream starts with a status line; true if it looks so. */
export function wellFormedH1(out: Uint8Array): boolean {
  if (out.length === 0) return true;
  return /^HTTP\/1\.1 [1-5]\d\d /.test(String.fromCharCode(...out.subarray(0, 13)));
}

/** One request through the pool (fetch cannot set Host): the raw answer. */
export async function viaPool(gw: GatewayProcess, path: string): Promise<string> {
  const req = `GET ${path} HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n`;
  const { out, ended } = await exchange(gw.ports.web, latin1(req));
  assert.ok(ended);
  return String.fromCharCode(...out);
}

/**
 * Runs `fn` against a gateway in front of `backend` (pool protocol `protocol`), then checks that
 * the gateway's books balance (tests/helpers/settled.ts: nothing left in flight, every upstream
 * connection idle) and that no unhandled rejection was logged; stops both whatever happens.
 */
export async function withGateway(
  backend: { address: string; stop(): Promise<void> },
  protocol: string,
  fn: (gw: GatewayProcess) => Promise<void>,
  backendTls = "",
): Promise<void> {
  const gw = await startGateway(fuzzGatewayConfig(backend.address, protocol, backendTls)).catch(async (e) => {
    await backend.stop();
    throw e;
  });
  try {
    await fn(gw);
    await assertSettled(gw);
    assert.doesNotMatch(gw.logs(), /unhandled rejection/);
  } finally {
    await gw.stop();
    await backend.stop();
  }
}

/** A fuzz test: real sockets to child processes, which the resource sanitizer cannot follow. */
export function fuzzTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, sanitizeResources: false, sanitizeOps: false, fn });
}

/**
 * GET /r/N through the HTTP/1.1 front to a hostile backend, rounds 0‥ROUNDS-1 in batches: each
 * client must get a well-formed answer (the relayed head, perhaps cut short after it, or the
 * gateway's own) and the end of its connection. The statuses seen, counted.
 */
export async function backendRounds(
  gw: GatewayProcess,
  describe: (n: number) => string,
): Promise<Map<string, number>> {
  const statuses = new Map<string, number>();
  const get = (n: number) =>
    exchange(gw.ports.web, latin1(`GET /r/${n} HTTP/1.1\r\nHost: origin\r\nTE: trailers\r\n\r\n`));
  await inBatches(ROUNDS, CONCURRENCY, get, (n, { out, ended }) => {
    const label = `round ${n}: ${describe(n)}`;
    assert.ok(ended, `${label}: the client's connection was left open`);
    assert.ok(
      out.length > 0 && wellFormedH1(out),
      `${label}: the client got ${JSON.stringify(String.fromCharCode(...out))}`,
    );
    tally(statuses, String.fromCharCode(...out.subarray(9, 12)));
  });
  return statuses;
}
