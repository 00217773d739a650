/**
 * Tunnels across the gateway's lifecycle, with real peers: a SIGHUP that keeps the route and the
 * backend leaves an open WebSocket alone (and one that removes the backend closes it with 1001); a
 * SIGTERM drain lets WebSockets run through drain_timeout, then sends close 1001 to both sides (HTTP/1.1
 * and HTTP/2 clients); the tunnel idle timeout and maximum lifetime close with 1001; generic CONNECT
 * works only to what the listener's allow-list names (curl over HTTP/1.1, node http2 over HTTP/2).
 */

import assert from "node:assert/strict";
import { basicConfig, type GatewayProcess, poolConfig, startGateway } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { run } from "../helpers/run.ts";
import { metricValue, startWsServer, WsClient, type WsServer } from "./websocket_helpers.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

function wsConfig(
  server: WsServer,
  opts: { pool?: string; runtime?: string; extraRoute?: string } = {},
): string {
  return basicConfig({
    extra: `[runtime]\nworkers = 1\n${opts.runtime ?? ""}`,
    routes: `${opts.extraRoute ?? ""}
  [[listeners.routes]]
  pool = "app"
`,
    pools: poolConfig("app", [`127.0.0.1:${server.port}`], opts.pool ?? ""),
  });
}

async function open(gw: GatewayProcess, transport: "h1" | "h2" = "h1", path = "/ws"): Promise<WsClient> {
  const c = await WsClient.connect({ url: `ws://127.0.0.1:${gw.ports.web}${path}`, transport });
  assert.equal(c.opened.event, "open", JSON.stringify(c.opened));
  return c;
}

Deno.test("SIGHUP keeping the route and backend: the open WebSocket survives; removing the backend closes it with 1001", async () => {
  const server = await startWsServer("h1");
  const other = await startWsServer("h1");
  let gw: GatewayProcess | undefined;
  const clients: WsClient[] = [];
  try {
    gw = await startGateway(wsConfig(server));
    const c = await open(gw);
    clients.push(c);
    assert.equal((await c.ask({ op: "text", text: "before" })).got, "before");
    // A real change: another route and pool, new timeouts on the WebSocket's own pool.
    await gw.writeConfig(
      wsConfig(server, {
        pool: 'response_timeout = "30s"\ntunnel_idle_timeout = "20m"',
        extraRoute: `
  [[listeners.routes]]
  path_prefix = "/other"
  pool = "other"
`,
      }) + poolConfig("other", [`127.0.0.1:${other.port}`]),
    );
    gw.signal("SIGHUP");
    await gw.waitForLog(/"msg":"config reloaded"/);
    assert.equal((await c.ask({ op: "text", text: "after reload" })).got, "after reload");
    assert.deepEqual(await c.ask({ op: "binary", bytes: 100_000 }), {
      op: "binary",
      ok: true,
      bytes: 100_000,
    });
    // A second reload moves the pool to the other backend: the tunnel to the removed one gets 1001.
    await gw.writeConfig(wsConfig(other));
    gw.signal("SIGHUP");
    const closed = await c.closed();
    assert.equal(closed.code, 1001);
    const d = await open(gw);
    clients.push(d);
    assert.equal((await d.ask({ op: "text", text: "new backend" })).got, "new backend");
    assert.equal((await other.stats()).connections, 1, "new WebSockets go to the new backend");
    const serverSide = await server.stats();
    assert.ok(serverSide.closes.some((x) => x.code === 1001), JSON.stringify(serverSide.closes));
    assert.equal(
      await metricValue(
        gw.admin("/metrics"),
        'expressgateway_tunnel_closes_total{listener="web",kind="websocket",reason="backend_removed"}',
      ),
      1,
    );
  } finally {
    for (const c of clients) await c.stop();
    if (gw) await gw.stop();
    await server.stop();
    await other.stop();
  }
});

Deno.test("SIGTERM drain: WebSockets keep working through drain_timeout, then both sides get close 1001", async () => {
  const server = await startWsServer("h1");
  let gw: GatewayProcess | undefined;
  const clients: WsClient[] = [];
  try {
    gw = await startGateway(wsConfig(server, { runtime: 'drain_timeout = "3s"' }));
    const h1 = await open(gw, "h1");
    const h2 = await open(gw, "h2");
    clients.push(h1, h2);
    assert.equal(
      await metricValue(
        gw.admin("/metrics"),
        'expressgateway_tunnels_active{listener="web",kind="websocket"}',
      ),
      2,
    );
    gw.signal("SIGTERM");
    await gw.waitForLog(/"msg":"draining"/);
    // Still relayed while the drain runs.
    assert.equal((await h1.ask({ op: "text", text: "draining?" })).got, "draining?");
    assert.equal((await h2.ask({ op: "text", text: "still here" })).got, "still here");
    const [c1, c2] = await Promise.all([h1.closed(15_000), h2.closed(15_000)]);
    assert.equal(c1.code, 1001, "HTTP/1.1 client: going away");
    assert.equal(c2.code, 1001, "HTTP/2 client: going away");
    const code = await gw.stop();
    gw = undefined;
    assert.equal(code, 0);
    const closes = (await server.stats()).closes.map((x) => x.code);
    assert.deepEqual(closes, [1001, 1001], "the backend got 1001 for both");
  } finally {
    for (const c of clients) await c.stop();
    if (gw) await gw.stop();
    await server.stop();
  }
});

Deno.test("drain while the backend streams 1 MiB messages: the 1001 close frame lands between frames", async () => {
  const server = await startWsServer("h1");
  let gw: GatewayProcess | undefined;
  const clients: WsClient[] = [];
  try {
    gw = await startGateway(wsConfig(server, { runtime: 'drain_timeout = "1s"' }));
    for (const transport of ["h1", "h2"] as const) {
      const c = await open(gw, transport);
      clients.push(c);
      // The backend sends as fast as the client reads (bounded by the drain: 1 s).
      await c.send({ op: "send", text: "flood:1000000" });
      await c.send({ op: "count", n: 1e9, timeoutMs: 30_000 });
    }
    await new Promise((r) => setTimeout(r, 200));
    gw.signal("SIGTERM");
    const closes = await Promise.all(clients.map((c) => c.closed(15_000)));
    // A close frame cut into the middle of a data frame would be a protocol error (1002) or a
    // dropped connection (1006) at the client; a clean 1001 means it went in between two frames.
    assert.deepEqual(closes.map((c) => c.code), [1001, 1001]);
    assert.equal(await gw.stop(), 0);
    gw = undefined;
    assert.deepEqual((await server.stats()).closes.map((x) => x.code), [1001, 1001]);
  } finally {
    for (const c of clients) await c.stop();
    if (gw) await gw.stop();
    await server.stop();
  }
});

Deno.test("tunnel idle timeout and maximum lifetime close with 1001", async () => {
  const server = await startWsServer("h1");
  let gw: GatewayProcess | undefined;
  const clients: WsClient[] = [];
  try {
    gw = await startGateway(basicConfig({
      extra: "[runtime]\nworkers = 1",
      routes: `
  [[listeners.routes]]
  path_prefix = "/short"
  pool = "short"
  [[listeners.routes]]
  pool = "idle"
`,
      pools: poolConfig("idle", [`127.0.0.1:${server.port}`], 'tunnel_idle_timeout = "1s"') +
        poolConfig(
          "short",
          [`127.0.0.1:${server.port}`],
          'tunnel_idle_timeout = "0s"\ntunnel_max_lifetime = "1500ms"',
        ),
    }));
    const idle = await open(gw, "h1", "/idle");
    const busy = await open(gw, "h2", "/short");
    clients.push(idle, busy);
    // The lifetime ends a tunnel even while it is busy.
    let echoed = 0;
    let closedBusy: Record<string, unknown> | undefined;
    const closing = busy.closed(15_000).then((c) => closedBusy = c);
    for (let i = 0; i < 100 && !closedBusy; i++) {
      try {
        const r = await busy.ask({ op: "text", text: `t${i}` }, 2000);
        if (r.got === `t${i}`) echoed++;
      } catch { /* closed meanwhile */ }
      await new Promise((r) => setTimeout(r, 100));
    }
    await closing;
    assert.equal(closedBusy!.code, 1001);
    assert.ok(echoed > 0);
    assert.equal((await idle.closed(15_000)).code, 1001, "idle timeout");
    const admin = gw.admin("/metrics");
    assert.equal(
      await metricValue(
        admin,
        'expressgateway_tunnel_closes_total{listener="web",kind="websocket",reason="idle_timeout"}',
      ),
      1,
    );
    assert.equal(
      await metricValue(
        admin,
        'expressgateway_tunnel_closes_total{listener="web",kind="websocket",reason="max_lifetime"}',
      ),
      1,
    );
  } finally {
    for (const c of clients) await c.stop();
    if (gw) await gw.stop();
    await server.stop();
  }
});

Deno.test("CONNECT host:port only with connect_tunnels, only to allowed destinations (HTTP/1.1 and HTTP/2)", async () => {
  const origin = await startOrigin();
  const denied = await startOrigin("denied");
  let gw: GatewayProcess | undefined;
  try {
    gw = await startGateway(basicConfig({
      extra: "[runtime]\nworkers = 1",
      listener: `connect_tunnels = { allow = ["127.0.0.1:${origin.port}"] }`,
      routes: `
  [[listeners.routes]]
  respond = { status = 200, body = "hello\\n" }
`,
    }));
    const proxy = `http://127.0.0.1:${gw.ports.web}`;
    const ok = await run("curl", [
      "-s",
      "-p",
      "-x",
      proxy,
      `http://127.0.0.1:${origin.port}/bytes/5000`,
      "-o",
      "/dev/null",
      "-w",
      "%{http_connect} %{http_code} %{size_download}",
    ]);
    assert.equal(ok.stdout, "200 200 5000", ok.stderr);
    const no = await run("curl", [
      "-s",
      "-p",
      "-x",
      proxy,
      `http://127.0.0.1:${denied.port}/bytes/10`,
      "-o",
      "/dev/null",
      "-w",
      "%{http_connect}",
    ]);
    assert.equal(no.stdout, "403");
    assert.equal(await denied.requests(), 0, "nothing was dialled for a denied destination");
    // HTTP/2 plain CONNECT to the allowed origin, and to a denied one.
    const h2 = async (authority: string) => {
      const r = await run("node", [
        `${ROOT}tests/fixtures/ws_h2_connect.mjs`,
        JSON.stringify({
          port: gw!.ports.web,
          authority,
          send: "GET /bytes/100 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        }),
      ]);
      return JSON.parse(r.stdout);
    };
    const through = await h2(`127.0.0.1:${origin.port}`);
    assert.equal(through.status, 200, JSON.stringify(through));
    assert.match(through.received, /^HTTP\/1\.1 200 OK\r\n/);
    assert.equal((await h2(`127.0.0.1:${denied.port}`)).status, 403);
    const admin = gw.admin("/metrics");
    assert.equal(await metricValue(admin, 'expressgateway_tunnels_total{listener="web",kind="connect"}'), 2);
    assert.equal(
      await metricValue(admin, 'expressgateway_protocol_events_total{listener="web",event="connect_denied"}'),
      2,
    );
    // Ordinary requests on the same listener are unaffected.
    assert.equal(await (await fetch(`${proxy}/`)).text(), "hello\n");
  } finally {
    if (gw) await gw.stop();
    await origin.stop();
    await denied.stop();
  }
  // Without connect_tunnels: 405, as before.
  gw = await startGateway(basicConfig({
    extra: "[runtime]\nworkers = 1",
    routes: `
  [[listeners.routes]]
  respond = { status = 200, body = "hello\\n" }
`,
  }));
  try {
    const r = await run("curl", [
      "-s",
      "-p",
      "-x",
      `http://127.0.0.1:${gw.ports.web}`,
      "http://127.0.0.1:9/",
      "-o",
      "/dev/null",
      "-w",
      "%{http_connect}",
    ]);
    assert.equal(r.stdout, "405");
  } finally {
    await gw.stop();
  }
});
