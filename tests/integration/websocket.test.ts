/**
 * WebSockets through the real gateway with real peers (npm `ws` both ends): HTTP/1.1 Upgrade and
 * RFC 8441 extended CONNECT from a node http2 client, to an HTTP/1.1 ws backend and to an h2c
 * backend speaking RFC 8441. Echo of text and binary, a 20 MB message, 10,000 small messages in
 * order, subprotocol and permessage-deflate negotiated end to end, close codes passed through, a
 * client that stops reading while the backend keeps sending (gateway RSS stays bounded), refusals.
 */

import assert from "node:assert/strict";
import { basicConfig, type GatewayProcess, poolConfig, startGateway } from "../helpers/gateway.ts";
import { assertSettled } from "../helpers/settled.ts";
import { startNodePeer } from "../helpers/node_peer.ts";
import { metricValue, rssKiB, startWsServer, WsClient, type WsServer } from "./websocket_helpers.ts";

const MB20 = 20 * 1000 * 1000;

function config(server: WsServer, opts: { h2c?: boolean; pool?: string } = {}): string {
  return basicConfig({
    extra: '[runtime]\nworkers = 1\ndrain_timeout = "2s"',
    pools: poolConfig(
      "app",
      [`127.0.0.1:${server.port}`],
      opts.pool ?? "",
    ).replace(`address = "127.0.0.1:${server.port}"`, (m) => opts.h2c ? `${m}\n  protocol = "h2c"` : m),
  });
}

async function withSetup(
  mode: "h1" | "h2c",
  fn: (gw: GatewayProcess, server: WsServer) => Promise<void>,
  pool?: string,
): Promise<void> {
  const server = await startWsServer(mode);
  let gw: GatewayProcess | undefined;
  try {
    gw = await startGateway(config(server, { h2c: mode === "h2c", pool }));
    await fn(gw, server);
    // Every session has closed: no tunnel, request or upstream connection may be left counted.
    await assertSettled(gw);
  } finally {
    if (gw) await gw.stop();
    await server.stop();
  }
}

async function echoSession(gw: GatewayProcess, transport: "h1" | "h2", deflate: boolean): Promise<void> {
  const c = await WsClient.connect({
    url: `ws://127.0.0.1:${gw.ports.web}/chat`,
    transport,
    protocols: ["superchat", "chat"],
    deflate,
  });
  try {
    assert.equal(c.opened.event, "open", JSON.stringify(c.opened));
    assert.equal(c.opened.protocol, "chat", "the backend's subprotocol choice reaches the client");
    assert.deepEqual((await c.ask({ op: "text", text: "héllo wörld" })).got, "héllo wörld");
    assert.deepEqual(await c.ask({ op: "binary", bytes: 1000 }), { op: "binary", ok: true, bytes: 1000 });
    const big = await c.ask({ op: "binary", bytes: MB20 }, 60_000);
    assert.deepEqual(big, { op: "binary", ok: true, bytes: MB20 }, "a 20 MB message comes back intact");
    const many = await c.ask({ op: "many", n: 10_000 }, 60_000);
    assert.deepEqual(many, { op: "many", received: 10_000, inOrder: true });
    await c.send({ op: "close", code: 4000, reason: "done here" });
    const closed = await c.closed();
    assert.equal(closed.code, 4000, "the client's close code comes back in the backend's close frame");
  } finally {
    await c.stop();
  }
}

Deno.test("HTTP/1.1 Upgrade to an HTTP/1.1 ws backend: echo, 20 MB, 10k in order, deflate, close codes", async () => {
  await withSetup("h1", async (gw, server) => {
    await echoSession(gw, "h1", false);
    // permessage-deflate is negotiated end to end (the gateway relays the compressed frames).
    const c = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}/x`, deflate: true });
    try {
      assert.equal(c.opened.event, "open");
      assert.deepEqual(c.opened.extensions, "permessage-deflate");
      assert.deepEqual(await c.ask({ op: "binary", bytes: 300_000 }), {
        op: "binary",
        ok: true,
        bytes: 300_000,
      });
      // The handshake reached the backend with its Sec-WebSocket-* fields and forwarding headers.
      const seen = JSON.parse((await c.ask({ op: "text", text: "headers" })).got as string);
      assert.match(seen["sec-websocket-key"], /^[A-Za-z0-9+/]{22}==$/);
      assert.equal(seen["sec-websocket-version"], "13");
      assert.match(seen["sec-websocket-extensions"], /permessage-deflate/);
      assert.equal(seen["upgrade"], "websocket");
      assert.equal(seen["x-forwarded-for"], "127.0.0.1");
      // A close code chosen by the backend reaches the client.
      await c.send({ op: "send", text: "close:4321:server says bye" });
      const closed = await c.closed();
      assert.deepEqual([closed.code, closed.reason], [4321, "server says bye"]);
    } finally {
      await c.stop();
    }
    const stats = await server.stats();
    assert.ok(stats.closes.some((x) => x.code === 4000), "the client's 4000 reached the backend");
    // Tunnel metrics: two WebSockets opened, none open now.
    const admin = gw.admin("/metrics");
    assert.equal(
      await metricValue(admin, 'expressgateway_tunnels_total{listener="web",kind="websocket"}'),
      2,
    );
    assert.equal(
      await metricValue(admin, 'expressgateway_tunnels_active{listener="web",kind="websocket"}'),
      0,
    );
    assert.equal(
      await metricValue(
        admin,
        'expressgateway_tunnel_closes_total{listener="web",kind="websocket",reason="closed"}',
      ),
      2,
    );
    // The upgraded upstream connections never went back to the pool.
    assert.equal(
      await metricValue(
        admin,
        'expressgateway_upstream_connections{pool="app",backend="127.0.0.1:' + server.port +
          '",state="idle"}',
      ),
      0,
    );
  });
});

Deno.test("RFC 8441 from a node http2 client, bridged to an HTTP/1.1 ws backend", async () => {
  await withSetup("h1", async (gw) => {
    await echoSession(gw, "h2", false);
  });
});

Deno.test("h2c backend with RFC 8441: from an HTTP/1.1 ws client and from an HTTP/2 client", async () => {
  await withSetup("h2c", async (gw) => {
    // HTTP/1.1 client → extended CONNECT upstream: the gateway computes Sec-WebSocket-Accept
    // (the ws client checks it) and translates 200 → 101.
    await echoSession(gw, "h1", false);
    await echoSession(gw, "h2", false);
  });
});

Deno.test("a client that stops reading: the backend is held back, gateway RSS stays bounded", async () => {
  for (const transport of ["h1", "h2"] as const) {
    await withSetup("h1", async (gw, server) => {
      const c = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}/flood`, transport });
      try {
        assert.equal(c.opened.event, "open");
        await c.ask({ op: "binary", bytes: 2 * 1024 * 1024 }); // warm up buffers on every hop
        const before = await rssKiB(gw.child.pid);
        const N = 200; // 200 MiB: far more than any bounded path holds
        await c.ask({ op: "pause" });
        await c.send({ op: "send", text: `flood:${N}` });
        await new Promise((r) => setTimeout(r, 3000));
        const stalled = await server.stats();
        const during = await rssKiB(gw.child.pid);
        await new Promise((r) => setTimeout(r, 1000));
        const later = await server.stats();
        const after = await rssKiB(gw.child.pid);
        const MiB = 1024 * 1024;
        // The backend is held back by TCP/HTTP-2 flow control through the gateway: what it could
        // write is a small part of the 200 MiB and stops growing; its own buffer fills up.
        assert.ok(stalled.flood.written < 80 * MiB, `backend wrote ${stalled.flood.written} bytes`);
        assert.ok(
          later.flood.written - stalled.flood.written < 16 * MiB,
          "no progress while the client stalls",
        );
        assert.ok(later.flood.bufferedAmount >= 8 * MiB, `backend buffered ${later.flood.bufferedAmount}`);
        const growth = Math.max(during, after) - before;
        assert.ok(growth < 48 * 1024, `gateway RSS grew ${growth} kB (before ${before} kB)`);
        // Resumed: everything arrives, in order.
        await c.ask({ op: "resume" });
        const got = await c.ask({ op: "count", n: N, timeoutMs: 40_000 }, 45_000);
        assert.deepEqual(got, { op: "count", received: N, inOrder: true }, transport);
      } finally {
        await c.stop();
      }
    });
  }
});

Deno.test("refusals: backend answers 403, websocket = false on the pool, h2 backend without RFC 8441", async () => {
  await withSetup("h1", async (gw) => {
    const c = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}/refuse` });
    try {
      assert.deepEqual(c.opened, { event: "failed", status: 403 }, "the backend's refusal is relayed");
    } finally {
      await c.stop();
    }
  });
  await withSetup("h1", async (gw) => {
    for (const transport of ["h1", "h2"] as const) {
      const c = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}/x`, transport });
      try {
        // websocket = false: 403 over HTTP/1.1; over HTTP/2 the listener does not even advertise
        // SETTINGS_ENABLE_CONNECT_PROTOCOL (no route allows WebSockets).
        if (transport === "h1") assert.deepEqual(c.opened, { event: "failed", status: 403 });
        else assert.match(String(c.opened.error), /ENABLE_CONNECT_PROTOCOL/);
      } finally {
        await c.stop();
      }
    }
  }, "websocket = false");
  // An h2c backend that never advertised SETTINGS_ENABLE_CONNECT_PROTOCOL: 502, nothing half-open.
  const h2 = await startNodePeer("h2_origin.mjs", ["plain", "h2c"]);
  let gw: GatewayProcess | undefined;
  try {
    gw = await startGateway(basicConfig({
      extra: "[runtime]\nworkers = 1",
      pools: poolConfig("app", [`127.0.0.1:${h2.port}`]).replace(
        `address = "127.0.0.1:${h2.port}"`,
        (m) => `${m}\n  protocol = "h2c"`,
      ),
    }));
    for (const transport of ["h1", "h2"] as const) {
      const c = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}/x`, transport });
      try {
        assert.deepEqual(c.opened, { event: "failed", status: 502 }, transport);
      } finally {
        await c.stop();
      }
    }
    assert.equal(await (await fetch(gw.url("web", "/status/204"))).status, 204, "plain requests still work");
  } finally {
    if (gw) await gw.stop();
    await h2.stop();
  }
});
