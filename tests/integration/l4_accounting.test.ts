/**
 * The books balance after TCP relays end badly. A relay holds two sockets, a pooled buffer per
 * direction, a deadline and a backend's in-flight count; each way a relay can end must give all
 * of them back. The endings: the client cuts a download (a reset: it leaves unread bytes) and an
 * upload, the backend resets mid-response, the client stops reading (the idle timeout cuts the
 * blocked write), a silent client (idle timeout), a client that half-closes and leaves while the
 * backend is still thinking, and a listener whose only backend refuses connections; then one
 * ordinary transfer must still come through whole. Afterwards no relay, client connection or
 * backend in-flight count may remain (tests/helpers/settled.ts), the run is done twice and the
 * second round must leave the gateway with no more open descriptors than the first, and no cut
 * upload may have reached the origin as a whole body. UDP sessions (each with a socket of its own
 * to its backend) must give theirs back when they expire, whether their backend answered or not.
 *
 * Peers: raw Deno TCP and UDP clients (they can stop at any byte) and, behind the gateway, the
 * node `http` origin (tests/fixtures/origin.mjs) and a node `dgram` echo (tests/fixtures/l4_peers.mjs).
 */

import assert from "node:assert/strict";
import { configHead, type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { startNodePeer } from "../helpers/node_peer.ts";
import { startOrigin } from "../helpers/origin.ts";
import { assertSettled } from "../helpers/settled.ts";
import { metricSum, openDescriptors, until, within } from "../helpers/common.ts";

const KiB = 1024, MiB = 1024 * KiB;
const IDLE_MS = 400;
/** No ending may take longer than this (a hang is a failure, not a slow pass). */
const STEP_MS = 10_000;
const enc = new TextEncoder();

type Ending =
  | "download_cut"
  | "upload_cut"
  | "backend_resets"
  | "client_stops_reading"
  | "silent_client"
  | "half_close_and_leave"
  | "backend_refuses"
  | "ok";
const ENDINGS: Ending[] = [
  "download_cut",
  "upload_cut",
  "backend_resets",
  "client_stops_reading",
  "silent_client",
  "half_close_and_leave",
  "backend_refuses",
  "ok",
];

function request(path: string, extra = ""): Uint8Array {
  return enc.encode(`GET ${path} HTTP/1.1\r\nhost: relay.test\r\nconnection: close\r\n${extra}\r\n`);
}

/** Reads until EOF, a reset or `limit` bytes; how many bytes came and whether it ended by EOF. */
async function drain(conn: Deno.Conn, limit = Infinity): Promise<{ bytes: number; eof: boolean }> {
  const buf = new Uint8Array(64 * KiB);
  let bytes = 0;
  try {
    while (bytes < limit) {
      const n = await conn.read(buf);
      if (n === null) return { bytes, eof: true };
      bytes += n;
    }
  } catch {
    return { bytes, eof: false }; // reset
  }
  return { bytes, eof: false };
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* closed */ }
}

async function ending(gw: GatewayProcess, e: Ending): Promise<void> {
  const port = e === "backend_refuses" ? gw.ports.dead : gw.ports.relay;
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    switch (e) {
      case "download_cut": {
        await c.write(request(`/bytes/${50 * MiB}`));
        const got = await drain(c, 256 * KiB);
        assert.ok(got.bytes >= 256 * KiB, `a download starts: ${got.bytes} bytes`);
        return; // closed with unread bytes: a reset
      }
      case "upload_cut": {
        await c.write(enc.encode(
          `POST /sha256?cut=1 HTTP/1.1\r\nhost: relay.test\r\ncontent-length: ${10 * MiB}\r\n\r\n`,
        ));
        await c.write(new Uint8Array(MiB));
        return;
      }
      case "backend_resets": {
        await c.write(request(`/kill-after/${100 * KiB}`));
        const got = await drain(c);
        assert.ok(
          got.bytes > 100 * KiB && got.bytes < 200 * KiB,
          `the head and the sent half: ${got.bytes} bytes`,
        );
        return;
      }
      case "client_stops_reading": {
        const before = await idleTimeouts(gw);
        await c.write(request(`/bytes/${50 * MiB}`));
        // The backend fills the socket buffers; the relay's write to us blocks until the idle
        // timeout ends the relay.
        await until(
          "the idle timeout cuts a relay whose client stopped reading",
          async () => await idleTimeouts(gw) > before,
          STEP_MS,
        );
        return;
      }
      case "silent_client": {
        const got = await drain(c);
        assert.deepEqual(got, { bytes: 0, eof: true }, "closed by the idle timeout without data");
        return;
      }
      case "half_close_and_leave": {
        await c.write(request("/hang"));
        await c.closeWrite();
        return;
      }
      case "backend_refuses": {
        const got = await drain(c);
        assert.equal(got.bytes, 0, "no byte from a backend that is not there");
        return;
      }
      case "ok": {
        await c.write(request(`/bytes/${MiB}`));
        const got = await drain(c);
        assert.ok(
          got.eof && got.bytes > MiB && got.bytes < MiB + KiB,
          `a whole response: ${got.bytes} bytes`,
        );
        return;
      }
    }
  } finally {
    closeQuietly(c);
  }
}

function idleTimeouts(gw: GatewayProcess): Promise<number> {
  return metricSum(gw.adminPort, /^expressgateway_l4_idle_timeouts_total\{listener="relay"\}/);
}

/** A port nothing listens on (bound, then released). */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("l4 accounting: TCP relays that end badly give back their sockets, buffers and in-flight counts", async (t) => {
  const origin = await startOrigin("o1");
  let gw: GatewayProcess | undefined;
  try {
    gw = await startGateway(`${configHead()}
[[listeners]]
name = "relay"
bind = "127.0.0.1:0"
protocol = "tcp"
idle_timeout = "${IDLE_MS}ms"
  [[listeners.routes]]
  pool = "up"

[[listeners]]
name = "dead"
bind = "127.0.0.1:0"
protocol = "tcp"
  [[listeners.routes]]
  pool = "gone"

[[pools]]
name = "up"
  [[pools.backends]]
  address = "${origin.address}"

[[pools]]
name = "gone"
  [[pools.backends]]
  address = "127.0.0.1:${closedPort()}"
`);
    const g = gw;
    const fds: number[] = [];
    for (const round of [1, 2]) {
      await t.step(`round ${round}`, async () => {
        for (const e of ENDINGS) {
          for (let i = 0; i < 3; i++) {
            await within(ending(g, e), STEP_MS, `${e} #${i + 1}`).catch((err) => {
              throw new Error(
                `${e} #${i + 1} (round ${round}): ${err}\n--- gateway ---\n${g.logs().slice(-3000)}`,
              );
            });
          }
        }
        await assertSettled(g);
      });
      fds.push(openDescriptors(g.child.pid));
    }
    assert.ok(fds[1] <= fds[0] + 4, `descriptors after each round: ${fds.join(", ")}`);
    // Every refused session was counted as such, once per session (its one backend, tried once).
    assert.equal(
      await metricSum(g.adminPort, /^expressgateway_l4_failures_total\{listener="dead",reason="connect"\}/),
      6,
    );
    const stats = await (await fetch(`http://${origin.address}/__stats`)).json();
    assert.equal(stats.cutCompleted, 0, "a cut upload reached the origin as a whole body");
  } finally {
    await gw?.stop();
    await origin.stop();
  }
});

Deno.test("l4 accounting: expired UDP sessions give back their sockets and in-flight counts, answered or not", async (t) => {
  const echo = await startNodePeer("l4_peers.mjs", ["udp-echo", "u1"]);
  let gw: GatewayProcess | undefined;
  const clients: Deno.DatagramConn[] = [];
  try {
    // Round robin over an echo and a port nobody answers on: half the sessions hear nothing back.
    gw = await startGateway(`${configHead()}
[[listeners]]
name = "udp"
bind = "127.0.0.1:0"
protocol = "udp"
idle_timeout = "${IDLE_MS}ms"
  [[listeners.routes]]
  pool = "echo"

[[pools]]
name = "echo"
  [[pools.backends]]
  address = "127.0.0.1:${echo.port}"
  [[pools.backends]]
  address = "127.0.0.1:${closedPort()}"
`);
    const g = gw;
    const active = () => metricSum(g.adminPort, /^expressgateway_l4_sessions_active\{listener="udp"\}/);
    const baseline = openDescriptors(g.child.pid);
    const SESSIONS = 40;
    for (const round of [1, 2]) {
      await t.step(`round ${round}`, async () => {
        for (let i = 0; i < SESSIONS; i++) {
          const c = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
          clients.push(c);
          for (let k = 0; k < 3; k++) {
            await c.send(enc.encode(`s${i}.${k}`), {
              transport: "udp",
              hostname: "127.0.0.1",
              port: g.ports.udp,
            });
          }
        }
        await until(`${SESSIONS} sessions open`, async () => await active() === SESSIONS, STEP_MS);
        const open = openDescriptors(g.child.pid);
        assert.ok(
          open >= baseline + SESSIONS,
          `a socket per session: ${open} descriptors, ${baseline} before`,
        );
        await until("every session expired", async () => await active() === 0, STEP_MS);
        for (const c of clients.splice(0)) c.close();
        await assertSettled(g);
        const after = openDescriptors(g.child.pid);
        assert.ok(
          after <= baseline + 2,
          `descriptors: ${baseline} before the sessions, ${after} after they expired`,
        );
      });
    }
    assert.equal(
      await metricSum(g.adminPort, /^expressgateway_l4_idle_timeouts_total\{listener="udp"\}/),
      2 * SESSIONS,
    );
    // The echo answered its half (3 datagrams each); the silent backend's half heard nothing.
    assert.equal(
      await metricSum(g.adminPort, /^expressgateway_l4_datagrams_to_client_total\{listener="udp"\}/),
      2 * (SESSIONS / 2) * 3,
    );
  } finally {
    for (const c of clients) c.close();
    await gw?.stop();
    await echo.stop();
  }
});
