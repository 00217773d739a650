/**
 * WebSockets over HTTP/3 (RFC 9220 extended CONNECT) through the real gateway, with real peers: the
 * Deno HTTP/3 test client (tests/helpers/h3_client.ts, on Deno's QUIC) speaking minimal RFC 6455
 * client framing (tests/helpers/ws_frames.ts) into a quic listener, bridged to an npm `ws` backend
 * over HTTP/1.1 Upgrade and to an h2c `ws` backend over RFC 8441; and the other way round, WebSocket
 * clients (node `ws`, HTTP/1.1 Upgrade and RFC 8441) through a gateway whose backend is an h3 one (a
 * second gateway's quic listener), so the gateway speaks RFC 9220 as a client too.
 *
 * Checked: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 only where a route allows WebSockets; text and binary
 * echo (GREASE frames between DATA frames skipped); a 20 MB message; 10,000 messages in order; close
 * code passthrough both ways; a client that stops reading keeps gateway RSS bounded while QUIC flow
 * control holds the backend back; `:protocol` without our setting, on a GET, or without `:path` →
 * H3_MESSAGE_ERROR; HEADERS inside a tunnel → H3_FRAME_UNEXPECTED; an unknown `:protocol` → 501;
 * plain CONNECT only with connect_tunnels (200 / 403 / 405); SIGHUP keeping the backend leaves an
 * open tunnel alone; SIGTERM drain ends it with close 1001 to both sides.
 */

import assert from "node:assert/strict";
import { configHead, type GatewayProcess, h3PoolConfig, startGateway } from "../helpers/gateway.ts";
import { H3Client, type H3Tunnel, makeTestPki } from "../helpers/h3_client.ts";
import { startOrigin } from "../helpers/origin.ts";
import { WsClientConn } from "../helpers/ws_frames.ts";
import { encodeFrame, greaseType, H3, Setting } from "../../src/http/h3/frames.ts";
import { metricValue, rssKiB, startWsServer, WsClient, type WsServer } from "./websocket_helpers.ts";
import { sha256, until, within } from "../helpers/common.ts";

const MiB = 1024 * 1024;
const MB20 = 20 * 1000 * 1000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Pki {
  cert: string;
  key: string;
  caPem: string;
}

function config(
  pki: Pki,
  ws: WsServer,
  wsH2: WsServer,
  originPort: number,
  opts: { extraRoute?: string; poolExtra?: string } = {},
): string {
  const tls = `tls = { cert = "${pki.cert}", key = "${pki.key}" }`;
  return `${configHead({ runtime: `drain_timeout = "2s"` })}
[[listeners]]
name = "h3"
bind = "127.0.0.1:0"
protocol = "quic"
${tls}
connect_tunnels = { allow = ["127.0.0.1:${originPort}"] }
${opts.extraRoute ?? ""}
  [[listeners.routes]]
  path_prefix = "/h2"
  pool = "wsh2"
  [[listeners.routes]]
  pool = "ws"

${noWebSocketsListener(tls)}
${wsPools(ws.port, opts.poolExtra)}

[[pools]]
name = "wsh2"
  [[pools.backends]]
  address = "127.0.0.1:${wsH2.port}"
  protocol = "h2c"
`;
}

/** A quic listener "nows" whose only route goes to a pool with websocket = false. */
function noWebSocketsListener(tls: string): string {
  return `[[listeners]]
name = "nows"
bind = "127.0.0.1:0"
protocol = "quic"
${tls}
  [[listeners.routes]]
  pool = "nows"`;
}

/** Pools "ws" (WebSockets allowed) and "nows" (websocket = false), both to the ws server. */
function wsPools(wsPort: number, wsExtra = ""): string {
  return `[[pools]]
name = "ws"
${wsExtra}
  [[pools.backends]]
  address = "127.0.0.1:${wsPort}"

[[pools]]
name = "nows"
websocket = false
  [[pools.backends]]
  address = "127.0.0.1:${wsPort}"`;
}

/** An RFC 9220 WebSocket: extended CONNECT, 200, then RFC 6455 frames in DATA frames. */
async function openWs(c: H3Client, path: string): Promise<{ tunnel: H3Tunnel; ws: WsClientConn }> {
  const tunnel = await within(
    c.connect({ protocol: "websocket", path, headers: [["sec-websocket-version", "13"]] }),
    10_000,
    `extended CONNECT ${path}`,
  );
  assert.equal(tunnel.status, 200, `extended CONNECT ${path}: ${tunnel.status}`);
  return { tunnel, ws: new WsClientConn(tunnel) };
}

/**
 * The close codes the backend recorded, once `ok` holds (polled, bounded): the `ws` server records a
 * close when its socket or HTTP/2 stream is fully closed, which can come after our client saw the end.
 */
async function backendCloses(server: WsServer, ok: (codes: number[]) => boolean): Promise<number[]> {
  let codes: number[] = [];
  for (let i = 0; i < 50; i++) {
    codes = (await server.stats()).closes.map((x) => x.code);
    if (ok(codes)) break;
    await sleep(100);
  }
  return codes;
}

async function settingsOf(c: H3Client): Promise<Map<number, number>> {
  for (let i = 0; i < 200 && !c.settings; i++) await sleep(10);
  assert.ok(c.settings, "the server's SETTINGS arrived");
  return c.settings;
}

/** Waits for the connection close the server sends, and returns its code. */
async function closeCode(c: H3Client): Promise<number> {
  const closed = await within(c.closed(), 10_000, "connection close");
  assert.equal(closed.local, false, `closed by us: ${closed.reason}`);
  return closed.code;
}

/** Client close with `code`; the backend answers it with the same code, then the stream ends. */
async function closeHandshake(t: H3Tunnel, ws: WsClientConn, code: number): Promise<void> {
  await ws.sendClose(code, "bye");
  const m = await within(ws.next(), 10_000, "the close answer");
  assert.deepEqual(m.type === "close" ? m.code : m, code, "the backend answers with our close code");
  await t.closeWrite();
  assert.deepEqual(await within(ws.next(), 10_000, "end of stream"), { type: "end" });
}

async function echoBasics(c: H3Client, path: string): Promise<void> {
  const { tunnel, ws } = await openWs(c, path);
  await ws.sendText("héllo wörld");
  assert.deepEqual(await within(ws.next(), 10_000, "text echo"), { type: "text", text: "héllo wörld" });
  // GREASE frames inside the tunnel are skipped (RFC 9114 §9), not relayed or fatal.
  await tunnel.writeRaw(encodeFrame(greaseType(7), new Uint8Array(33)));
  const bin = crypto.getRandomValues(new Uint8Array(1000));
  await ws.sendBinary(bin);
  assert.deepEqual(await within(ws.next(), 10_000, "binary echo"), { type: "binary", data: bin });
  await closeHandshake(tunnel, ws, 4001);
}

Deno.test("RFC 9220: WebSockets over HTTP/3 to an HTTP/1.1 ws backend and an h2c RFC 8441 backend", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-ws-h3-" });
  const pki = await makeTestPki(dir);
  const ws = await startWsServer("h1");
  const wsH2 = await startWsServer("h2c");
  const origin = await startOrigin("o1");
  const denied = await startOrigin("denied");
  let gw: GatewayProcess | undefined;
  const clients: H3Client[] = [];
  const client = async (listener = "h3") => {
    const c = await H3Client.connect({ port: gw!.ports[listener], ca: pki.caPem });
    clients.push(c);
    return c;
  };
  try {
    gw = await startGateway(config(pki, ws, wsH2, origin.port));

    await t.step(
      "SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 where a route allows WebSockets, absent elsewhere",
      async () => {
        assert.equal((await settingsOf(await client())).get(Setting.ENABLE_CONNECT_PROTOCOL), 1);
        assert.equal(
          (await settingsOf(await client("nows"))).get(Setting.ENABLE_CONNECT_PROTOCOL),
          undefined,
        );
      },
    );

    await t.step("h1 backend: text and binary echo, close 4001 passed through both ways", async () => {
      await echoBasics(await client(), "/chat");
      const closes = await backendCloses(ws, (c) => c.includes(4001));
      assert.ok(closes.includes(4001), `the backend saw the client's 4001: ${JSON.stringify(closes)}`);
    });

    await t.step("h1 backend: a 20 MB message and 10,000 small messages in order", async () => {
      const c = await client();
      const { tunnel, ws: w } = await openWs(c, "/bulk");
      const big = new Uint8Array(MB20);
      for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff;
      crypto.getRandomValues(big.subarray(0, 65536));
      const t0 = performance.now();
      const sending = w.sendBinary(big);
      const back = await within(w.next(), 60_000, "the 20 MB echo");
      await sending;
      const ms = performance.now() - t0;
      assert.equal(back.type, "binary");
      if (back.type === "binary") {
        assert.equal(back.data.length, MB20);
        assert.equal(await sha256(back.data), await sha256(big), "the 20 MB message comes back intact");
      }
      console.log(`20 MB WebSocket message round trip over HTTP/3: ${Math.round(ms)} ms`);
      const N = 10_000;
      const reading = (async () => {
        for (let i = 0; i < N; i++) {
          const m = await w.next();
          if (m.type !== "text" || m.text !== `m${i}`) return `message ${i}: ${JSON.stringify(m)}`;
        }
        return "ok";
      })();
      for (let i = 0; i < N; i++) await w.sendText(`m${i}`);
      assert.equal(await within(reading, 60_000, "10,000 echoes"), "ok");
      await closeHandshake(tunnel, w, 1000);
    });

    await t.step("h2c backend over RFC 8441: text and binary echo, close code passthrough", async () => {
      await echoBasics(await client(), "/h2/chat");
      const closes = await backendCloses(wsH2, (c) => c.includes(4001));
      assert.ok(closes.includes(4001), `the h2c backend saw the client's 4001: ${JSON.stringify(closes)}`);
    });

    await t.step(
      "a client that stops reading: the backend is held back, gateway RSS stays bounded",
      async () => {
        const c = await client();
        const { tunnel, ws: w } = await openWs(c, "/flood");
        await w.sendBinary(new Uint8Array(2 * MiB)); // warm up buffers on every hop
        assert.equal((await within(w.next(), 20_000, "warm-up echo")).type, "binary");
        const before = await rssKiB(gw!.child.pid);
        const N = 200; // 200 MiB: far more than any bounded path holds
        await w.sendText(`flood:${N}`);
        await sleep(3000); // nothing is read from the stream meanwhile
        const stalled = await ws.stats();
        const during = await rssKiB(gw!.child.pid);
        await sleep(1000);
        const later = await ws.stats();
        const after = await rssKiB(gw!.child.pid);
        const growth = Math.max(during, after) - before;
        console.log(
          `stalled HTTP/3 reader: gateway RSS ${before} → ${during} → ${after} kB (growth ${growth} kB); ` +
            `backend wrote ${Math.round(later.flood.written / MiB)} MiB, buffered ${
              Math.round(later.flood.bufferedAmount / MiB)
            } MiB`,
        );
        assert.ok(stalled.flood.written < 80 * MiB, `backend wrote ${stalled.flood.written} bytes`);
        assert.ok(
          later.flood.written - stalled.flood.written < 16 * MiB,
          "no progress while the client stalls",
        );
        assert.ok(later.flood.bufferedAmount >= 8 * MiB, `backend buffered ${later.flood.bufferedAmount}`);
        // Bounded by QUIC flow control towards the stalled client and the relay's one buffer per
        // direction (measured: under 0.2 MiB of growth); holding the flood would be hundreds of MiB.
        assert.ok(growth < 16 * 1024, `gateway RSS grew ${growth} kB (before ${before} kB)`);
        // Resumed: everything arrives, in order.
        const counted = (async () => {
          for (let i = 0; i < N; i++) {
            const m = await w.next();
            if (m.type !== "binary" || m.data.length !== MiB) return `message ${i}: ${m.type}`;
            if (
              new DataView(m.data.buffer, m.data.byteOffset).getUint32(0) !== i
            ) return `out of order at ${i}`;
          }
          return "ok";
        })();
        assert.equal(await within(counted, 90_000, "200 flood messages"), "ok");
        await closeHandshake(tunnel, w, 1000);
      },
    );

    await t.step("`:protocol` where not advertised → H3_MESSAGE_ERROR", async () => {
      const c = await client("nows");
      await settingsOf(c);
      c.connect({ protocol: "websocket", path: "/x" }).catch(() => {});
      assert.equal(await closeCode(c), H3.MESSAGE_ERROR);
    });

    await t.step(
      "`:protocol` on a GET, or an extended CONNECT without :path → H3_MESSAGE_ERROR",
      async () => {
        const cases: Array<Array<[string, string]>> = [
          [[":method", "GET"], [":protocol", "websocket"], [":scheme", "https"], [":path", "/"], [
            ":authority",
            "localhost",
          ]],
          [[":method", "CONNECT"], [":protocol", "websocket"], [":scheme", "https"], [
            ":authority",
            "localhost",
          ]],
        ];
        for (const fields of cases) {
          const c = await client();
          await settingsOf(c);
          c.connect({ fields }).catch(() => {});
          assert.equal(await closeCode(c), H3.MESSAGE_ERROR, JSON.stringify(fields));
        }
      },
    );

    await t.step("HEADERS inside an open tunnel → H3_FRAME_UNEXPECTED (RFC 9114 §4.4)", async () => {
      const c = await client();
      const { tunnel } = await openWs(c, "/x");
      await tunnel.writeRaw(H3Client.headersFrame([["x-trailer", "1"]]));
      assert.equal(await closeCode(c), H3.FRAME_UNEXPECTED);
    });

    await t.step("an extended CONNECT for another protocol → 501; the gateway keeps serving", async () => {
      const c = await client();
      const r = await within(c.connect({ protocol: "connect-udp", path: "/x" }), 10_000, "connect-udp");
      assert.equal(r.status, 501);
      await echoBasics(c, "/again");
    });

    await t.step(
      "plain CONNECT: 200 and bytes with connect_tunnels, 403 off the allow list, 405 without",
      async () => {
        const c = await client();
        const tun = await within(c.connect({ authority: `127.0.0.1:${origin.port}` }), 10_000, "CONNECT");
        assert.equal(tun.status, 200);
        await tun.write(
          new TextEncoder().encode("GET /bytes/100 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
        );
        await tun.closeWrite();
        const bytes: number[] = [];
        const reading = (async () => {
          for (let chunk = await tun.read(); chunk !== null; chunk = await tun.read()) bytes.push(...chunk);
        })();
        await within(reading, 10_000, "the tunnelled response");
        const got = String.fromCharCode(...bytes);
        assert.match(got, /^HTTP\/1\.1 200 OK\r\n/);
        const body = bytes.slice(got.indexOf("\r\n\r\n") + 4);
        // The origin's /bytes/N: byte i is (i * 31 + 7) & 255.
        assert.deepEqual(body, [...Array(100).keys()].map((i) => (i * 31 + 7) & 255));
        const no = await within(c.connect({ authority: `127.0.0.1:${denied.port}` }), 10_000, "denied");
        assert.equal(no.status, 403);
        assert.equal(await denied.requests(), 0, "nothing was dialled for a denied destination");
        const c2 = await client("nows");
        const off = await within(c2.connect({ authority: `127.0.0.1:${origin.port}` }), 10_000, "405");
        assert.equal(off.status, 405);
      },
    );

    await t.step("metrics: tunnels counted on the quic listener, none left open", async () => {
      const admin = gw!.admin("/metrics");
      // /chat, /bulk, /h2/chat, /flood, /x (HEADERS), /again: six WebSockets; two CONNECT tunnels.
      assert.equal(
        await metricValue(admin, 'expressgateway_tunnels_total{listener="h3",kind="websocket"}'),
        6,
      );
      assert.equal(await metricValue(admin, 'expressgateway_tunnels_total{listener="h3",kind="connect"}'), 1);
      for (let i = 0; i < 50; i++) {
        if (await metricValue(admin, 'expressgateway_tunnels_active{listener="h3",kind="websocket"}') === 0) {
          break;
        }
        await sleep(100);
      }
      assert.equal(
        await metricValue(admin, 'expressgateway_tunnels_active{listener="h3",kind="websocket"}'),
        0,
      );
    });
  } finally {
    for (const c of clients) c.close();
    if (gw) await gw.stop();
    await ws.stop();
    await wsH2.stop();
    await origin.stop();
    await denied.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("RFC 9220 tunnels across SIGHUP (kept) and SIGTERM drain (close 1001 to both sides)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-ws-h3-" });
  const pki = await makeTestPki(dir);
  const ws = await startWsServer("h1");
  const wsH2 = await startWsServer("h2c");
  let gw: GatewayProcess | undefined;
  let c: H3Client | undefined;
  try {
    gw = await startGateway(config(pki, ws, wsH2, 9));
    c = await H3Client.connect({ port: gw.ports.h3, ca: pki.caPem });
    const { tunnel, ws: w } = await openWs(c, "/live");
    const { ws: w2 } = await openWs(c, "/h2/live");
    await w.sendText("before");
    assert.deepEqual(await within(w.next(), 10_000, "echo"), { type: "text", text: "before" });
    // A real change that keeps the route and the backend: another route, new pool timeouts.
    await gw.writeConfig(config(pki, ws, wsH2, 9, {
      poolExtra: 'response_timeout = "30s"\ntunnel_idle_timeout = "20m"',
      extraRoute: `
  [[listeners.routes]]
  path_prefix = "/other"
  respond = { status = 200, body = "other\\n" }`,
    }));
    gw.signal("SIGHUP");
    await gw.waitForLog(/"msg":"config reloaded"/);
    await w.sendText("after reload");
    assert.deepEqual(await within(w.next(), 10_000, "echo after reload"), {
      type: "text",
      text: "after reload",
    });
    assert.equal(
      await metricValue(
        gw.admin("/metrics"),
        'expressgateway_tunnels_active{listener="h3",kind="websocket"}',
      ),
      2,
    );
    gw.signal("SIGTERM");
    await gw.waitForLog(/"msg":"draining"/);
    // Still relayed while the drain runs.
    await w.sendText("draining?");
    assert.deepEqual(await within(w.next(), 10_000, "echo while draining"), {
      type: "text",
      text: "draining?",
    });
    const [m1, m2] = await within(
      Promise.all([w.next(), w2.next()]),
      15_000,
      "close 1001 at the end of the drain",
    );
    assert.deepEqual(m1, { type: "close", code: 1001, reason: "" }, "h1 backend tunnel: going away");
    assert.deepEqual(m2, { type: "close", code: 1001, reason: "" }, "h2c backend tunnel: going away");
    await w.sendClose(1001).catch(() => {});
    await tunnel.closeWrite();
    assert.equal(await gw.stop(), 0);
    gw = undefined;
    assert.deepEqual(await backendCloses(ws, (c) => c.length > 0), [1001], "the h1 backend got 1001");
    assert.deepEqual(await backendCloses(wsH2, (c) => c.length > 0), [1001], "the h2c backend got 1001");
  } finally {
    c?.close();
    if (gw) await gw.stop();
    await ws.stop();
    await wsH2.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("RFC 9220 towards an h3 backend: WebSocket clients (HTTP/1.1 Upgrade, RFC 8441) → gateway → h3 gateway → ws", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-ws-to-h3-" });
  const pki = await makeTestPki(dir);
  const ws = await startWsServer("h1");
  let back: GatewayProcess | undefined;
  let front: GatewayProcess | undefined;
  try {
    // The h3 backend is another gateway: its quic listener speaks RFC 9220 to clients (tested above
    // against our H3 test client) and bridges to the `ws` server; "nows" advertises no
    // SETTINGS_ENABLE_CONNECT_PROTOCOL (no route allows WebSockets there).
    const tls = `tls = { cert = "${pki.cert}", key = "${pki.key}" }`;
    back = await startGateway(`${configHead()}
[[listeners]]
name = "h3"
bind = "127.0.0.1:0"
protocol = "quic"
${tls}
  [[listeners.routes]]
  path_prefix = "/forbidden"
  respond = { status = 403, body = "no websockets here" }
  [[listeners.routes]]
  pool = "ws"
${noWebSocketsListener(tls)}
${wsPools(ws.port)}
`);
    front = await startGateway(`${configHead()}
[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  path_prefix = "/refused"
  pool = "h3nows"
  [[listeners.routes]]
  pool = "h3ws"
${h3PoolConfig("h3ws", `127.0.0.1:${back.ports.h3}`, pki.ca)}
${h3PoolConfig("h3nows", `127.0.0.1:${back.ports.nows}`, pki.ca)}
`);
    const gw = front;

    for (const transport of ["h1", "h2"] as const) {
      await t.step(`${transport} client: echo, 2 MB, 1,000 in order, close code both ways`, async () => {
        const c = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}/chat`, transport });
        try {
          assert.equal(c.opened.event, "open", JSON.stringify(c.opened));
          assert.deepEqual((await c.ask({ op: "text", text: "héllo h3" })).got, "héllo h3");
          assert.deepEqual(await c.ask({ op: "binary", bytes: 2 * MiB }, 60_000), {
            op: "binary",
            ok: true,
            bytes: 2 * MiB,
          });
          assert.deepEqual(await c.ask({ op: "many", n: 1000 }, 60_000), {
            op: "many",
            received: 1000,
            inOrder: true,
          });
          await c.send({ op: "close", code: 4002, reason: "via h3" });
          assert.equal(
            (await c.closed()).code,
            4002,
            "the backend's close frame came back through both gateways",
          );
        } finally {
          await c.stop();
        }
      });
    }

    await t.step("a refusal from the h3 backend (403 with a body) reaches the client as it is", async () => {
      const c = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}/forbidden` });
      try {
        assert.deepEqual(c.opened, { event: "failed", status: 403 });
      } finally {
        await c.stop();
      }
      // The refused stream gave its slot back: the next WebSocket on the same h3 connection opens.
      const ok = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}/again` });
      try {
        assert.equal(ok.opened.event, "open", JSON.stringify(ok.opened));
        assert.deepEqual((await ok.ask({ op: "text", text: "still here" })).got, "still here");
        await ok.send({ op: "close", code: 1000, reason: "" });
        await ok.closed();
      } finally {
        await ok.stop();
      }
    });

    await t.step("an h3 backend without SETTINGS_ENABLE_CONNECT_PROTOCOL: 502, counted", async () => {
      const c = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}/refused` });
      try {
        assert.equal(c.opened.event, "failed", JSON.stringify(c.opened));
        assert.match(String(c.opened.error ?? c.opened.status), /502/);
      } finally {
        await c.stop();
      }
      assert.ok(
        await metricValue(
          gw.admin("/metrics"),
          `expressgateway_upstream_errors_total{pool="h3nows",backend="127.0.0.1:${
            back!.ports.nows
          }",kind="protocol"}`,
        ) >= 1,
      );
    });

    await t.step(
      "every tunnel ended on both gateways, and the h3 backend is no longer counted busy",
      async () => {
        const series = (g: GatewayProcess, s: string) => metricValue(g.admin("/metrics"), s);
        // The far ends notice a moment after the clients do: polled, bounded.
        await until(
          "the ws server and the h3 gateway saw every tunnel end",
          async () =>
            (await ws.stats()).open === 0 &&
            await series(back!, `expressgateway_tunnels_active{listener="h3",kind="websocket"}`) === 0,
        );
        const stats = await ws.stats();
        assert.ok(stats.connections >= 2, "both clients reached the ws server through the h3 hop");
        assert.equal(await series(gw, `expressgateway_tunnels_total{listener="web",kind="websocket"}`), 3);
        assert.equal(await series(gw, `expressgateway_tunnels_active{listener="web",kind="websocket"}`), 0);
        assert.equal(
          await series(
            gw,
            `expressgateway_backend_in_flight{pool="h3ws",backend="127.0.0.1:${back!.ports.h3}"}`,
          ),
          0,
        );
      },
    );
  } finally {
    await front?.stop();
    await back?.stop();
    await ws.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
