/**
 * gRPC through the gateway with real @grpc/grpc-js peers (tests/fixtures/grpc_*.mjs, run by
 * node): unary, server-streaming, client-streaming and bidi calls over an h2c front to an h2c
 * backend and over an h2 (TLS, ALPN) front to an h2 backend; metadata, trailers and
 * Trailers-Only errors passing through; grpc-timeout clamped to grpc_max_timeout and enforced
 * by the gateway against a backend that ignores it; UNAVAILABLE when no backend can serve;
 * the gateway's own grpc.health.v1 answers; gRPC health probes of the backends; and a gRPC
 * request on HTTP/1.1 refused at once.
 */

import assert from "node:assert/strict";
import { configHead, type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { assertSettled } from "../helpers/settled.ts";
import { run } from "../helpers/run.ts";
import { until } from "../helpers/common.ts";
import { startNodePeer } from "../helpers/node_peer.ts";
import { type Certs, type H2Origin, makeCerts, startH2Origin } from "./h2_helpers.ts";
import { clampGrpcTimeout, formatGrpcTimeout, parseGrpcTimeout } from "../../src/grpc/timeout.ts";
import {
  decodeHealthRequest,
  decodeHealthResponse,
  encodeHealthRequest,
  encodeHealthResponse,
  frameMessage,
  unframeMessage,
} from "../../src/grpc/messages.ts";
import { encodeGrpcMessage, isGrpcContentType } from "../../src/grpc/status.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
type Json = any;

interface GrpcServer {
  port: number;
  stubbornPort: number;
  stop(): Promise<void>;
}

async function startGrpcServer(name: string, certs?: Certs): Promise<GrpcServer> {
  const cfg = { name, tls: certs ? { cert: certs.cert, key: certs.key } : undefined };
  const peer = await startNodePeer("grpc_server.mjs", [JSON.stringify(cfg)], 15_000);
  return { port: peer.port, stubbornPort: peer.info.stubbornPort as number, stop: peer.stop };
}

/** Runs calls with tests/fixtures/grpc_client.mjs on one channel; one result per call. */
async function grpcCalls(target: string, calls: Json[], ca?: string): Promise<Json[]> {
  const r = await run("node", [
    `${ROOT}tests/fixtures/grpc_client.mjs`,
    JSON.stringify({ target, ca, calls }),
  ], {
    timeoutMs: 30_000,
  });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`grpc client failed (${r.code}): ${r.stdout}\n${r.stderr}`);
  }
}

function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function backends(gw: GatewayProcess): Promise<Json[]> {
  return (await (await fetch(gw.admin("/status/backends"))).json()).backends;
}

function eventCount(text: string, event: string): number {
  const m = new RegExp(`^expressgateway_protocol_events_total\\{[^}]*event="${event}"[^}]*\\} (\\d+)`, "m")
    .exec(text);
  return m ? Number(m[1]) : 0;
}

function config(a: GrpcServer, b: GrpcServer, certs: Certs, downPort: number, web: H2Origin): string {
  const probe = `
  [pools.health]
  kind = "grpc"
  interval = "200ms"
  jitter = "0ms"
  timeout = "1s"
  rise = 1
  fall = 1`;
  return `${configHead()}
[[listeners]]
name = "grpc"
bind = "127.0.0.1:0"
protocol = "http"
grpc_health = true
grpc_max_timeout = "2s"
  [[listeners.routes]]
  path_prefix = "/eg.test.Echo/"
  pool = "echo"
  [[listeners.routes]]
  path_prefix = "/eg.test.Stubborn/"
  pool = "stubborn"
  [[listeners.routes]]
  path_prefix = "/eg.test.Down/"
  pool = "down"

[[listeners]]
name = "tls"
bind = "127.0.0.1:0"
protocol = "https"
  [listeners.tls]
  cert = "${certs.cert}"
  key = "${certs.key}"
  [[listeners.routes]]
  pool = "echo_tls"

[[pools]]
name = "echo"
${probe}
  [[pools.backends]]
  address = "127.0.0.1:${a.port}"
  protocol = "h2c"

[[pools]]
name = "stubborn"
  [[pools.backends]]
  address = "127.0.0.1:${a.stubbornPort}"
  protocol = "h2c"

[[pools]]
name = "down"
panic_threshold = 0
${probe}
  [[pools.backends]]
  address = "127.0.0.1:${downPort}"
  protocol = "h2c"

[[pools]]
name = "h2web"
  [pools.health]
  kind = "http"
  path = "/status/204"
  expected_status = "204"
  interval = "200ms"
  jitter = "0ms"
  rise = 1
  fall = 1
  [[pools.backends]]
  address = "${web.address}"
  protocol = "h2c"

[[pools]]
name = "echo_tls"
${probe}
  [[pools.backends]]
  address = "127.0.0.1:${b.port}"
  protocol = "h2"
    [pools.backends.tls]
    ca = "${certs.ca}"
    server_name = "localhost"
`;
}

Deno.test("gRPC through the gateway: all call kinds, trailers, deadlines, health, errors", async (t) => {
  const certs = await makeCerts();
  const a = await startGrpcServer("a");
  const b = await startGrpcServer("b", certs);
  const web = await startH2Origin("h2web", "h2c");
  let gw: GatewayProcess | undefined;
  try {
    gw = await startGateway(config(a, b, certs, closedPort(), web));
    const target = `127.0.0.1:${gw.ports.grpc}`;

    await t.step("gRPC health probes mark the live backends up and the missing one down", async () => {
      await until("echo up and down down by gRPC probes", async () => {
        const all = await backends(gw!);
        const by = (pool: string) => all.find((x) => x.pool === pool);
        return by("echo")?.last_check?.ok === true && by("echo_tls")?.last_check?.ok === true &&
          by("down")?.up === false && by("h2web")?.last_check?.ok === true;
      });
      const all = await backends(gw!);
      assert.equal(all.find((x) => x.pool === "echo").last_check.detail, "SERVING");
      assert.equal(all.find((x) => x.pool === "echo_tls").last_check.detail, "SERVING");
      assert.match(all.find((x) => x.pool === "down").last_check.detail, /connect|refused/i);
      // An http probe of an h2c backend speaks HTTP/2 (prior knowledge), as requests do.
      assert.equal(all.find((x) => x.pool === "h2web").last_check.detail, "status 204 (h2)");
    });

    await t.step("h2c front → h2c backend: four call kinds, metadata, trailers, statuses", async () => {
      const [unary, failed, server, client, bidi] = await grpcCalls(target, [
        { rpc: "Unary", req: { text: "hi" }, metadata: { "x-meta": "m1" }, deadlineMs: 5000 },
        { rpc: "Unary", req: { code: 5 }, deadlineMs: 5000 },
        { rpc: "ServerStream", req: { text: "s", count: 5 }, deadlineMs: 5000 },
        {
          rpc: "ClientStream",
          reqs: [{ text: "a" }, { text: "b" }, { text: "c" }, { text: "d" }],
          deadlineMs: 5000,
        },
        { rpc: "Bidi", reqs: [{ text: "x" }, { text: "y" }, { text: "z" }], metadata: { "x-meta": "bd" } },
      ]);
      assert.equal(unary.code, 0, unary.details);
      assert.equal(unary.response.text, "a:hi");
      assert.equal(unary.headers["x-echo-meta"], "m1");
      assert.equal(unary.trailers["x-trailer"], "a-done");
      // A Trailers-Only error from the backend passes as is: status, message and trailer metadata.
      assert.equal(failed.code, 5);
      assert.equal(failed.details, "requested status 5 from a");
      assert.equal(failed.trailers["x-trailer"], "a-done");
      assert.equal(server.code, 0, server.details);
      assert.deepEqual(server.messages.map((m: Json) => m.text), ["s-0", "s-1", "s-2", "s-3", "s-4"]);
      assert.equal(server.trailers["x-trailer"], "a-done");
      assert.equal(client.code, 0, client.details);
      assert.equal(client.response.text, "a+b+c+d");
      assert.equal(client.response.count, 4);
      assert.equal(bidi.code, 0, bidi.details);
      assert.deepEqual(bidi.messages.map((m: Json) => m.text), ["X", "Y", "Z"]);
      assert.equal(bidi.headers["x-echo-meta"], "bd");
      assert.equal(bidi.trailers["x-trailer"], "a-done");
    });

    await t.step(
      "deadlines: client deadlines hold, grpc-timeout is clamped to grpc_max_timeout",
      async () => {
        const [long, none, short, late] = await grpcCalls(target, [
          { rpc: "Unary", req: { text: "long" }, deadlineMs: 60_000 },
          { rpc: "Unary", req: { text: "none" } },
          { rpc: "Unary", req: { text: "short" }, deadlineMs: 1000 },
          { rpc: "Unary", req: { text: "late", delay_ms: 1500 }, deadlineMs: 300 },
        ]);
        // `count` is the deadline the backend saw, in ms.
        assert.equal(long.code, 0);
        assert.ok(
          long.response.count > 0 && long.response.count <= 2000,
          `60 s clamped to 2 s: ${long.response.count}`,
        );
        assert.equal(none.code, 0);
        assert.ok(
          none.response.count > 0 && none.response.count <= 2000,
          `none → 2 s: ${none.response.count}`,
        );
        assert.equal(short.code, 0);
        assert.ok(
          short.response.count > 0 && short.response.count <= 1000,
          `1 s kept: ${short.response.count}`,
        );
        assert.equal(late.code, 4, "DEADLINE_EXCEEDED");
      },
    );

    await t.step("the gateway ends a call past grpc_max_timeout when the backend ignores it", async () => {
      const [forever] = await grpcCalls(target, [{ rpc: "Forever", req: { text: "t" } }]);
      assert.equal(forever.code, 4, `DEADLINE_EXCEEDED, got ${forever.code} ${forever.details}`);
      assert.match(forever.details, /gateway/);
      assert.ok(
        forever.messages.length >= 3,
        `messages streamed before the deadline: ${forever.messages.length}`,
      );
      assert.ok(forever.ms >= 1500 && forever.ms < 6000, `ended near the 2 s cap: ${forever.ms} ms`);
    });

    await t.step("grpc.health.v1.Health/Check answered by the gateway from pool health", async () => {
      const [echo, down, all, unknown] = await grpcCalls(target, [
        { rpc: "Check", service: "eg.test.Echo" },
        { rpc: "Check", service: "eg.test.Down" },
        { rpc: "Check", service: "" },
        { rpc: "Check", service: "nope.Missing" },
      ]);
      assert.equal(echo.code, 0);
      assert.equal(echo.response.status, "SERVING");
      assert.equal(down.code, 0);
      assert.equal(down.response.status, "NOT_SERVING");
      // "" covers every pool the listener routes to; "down" has no healthy backend.
      assert.equal(all.response.status, "NOT_SERVING");
      assert.equal(unknown.code, 5, "NOT_FOUND for a service no route serves");
      // Answered by the gateway: the backend's own Health service would say SERVING for "".
      assert.equal(echo.trailers["x-trailer"], undefined);
    });

    await t.step(
      "no backend → UNAVAILABLE, no route → UNIMPLEMENTED (Trailers-Only from the gateway)",
      async () => {
        const [down, nope] = await grpcCalls(target, [
          { rpc: "Raw", path: "/eg.test.Down/Unary", deadlineMs: 5000 },
          { rpc: "Raw", path: "/eg.test.Nope/Unary", deadlineMs: 5000 },
        ]);
        assert.equal(down.code, 14, `UNAVAILABLE, got ${down.code} ${down.details}`);
        assert.match(down.details, /no backend available/);
        assert.equal(nope.code, 12, `UNIMPLEMENTED, got ${nope.code} ${nope.details}`);
        assert.match(nope.details, /no route/);
      },
    );

    await t.step("gRPC on an HTTP/1.1 connection: 505 at once, never forwarded", async () => {
      const started = Date.now();
      const res = await fetch(`http://${target}/eg.test.Echo/Unary`, {
        method: "POST",
        headers: { "content-type": "application/grpc", te: "trailers" },
        body: new Uint8Array([0, 0, 0, 0, 0]),
        signal: AbortSignal.timeout(5000),
      });
      const text = await res.text();
      assert.equal(res.status, 505);
      assert.equal(res.headers.get("grpc-status"), "14");
      assert.match(text, /gRPC needs HTTP\/2/);
      assert.ok(Date.now() - started < 3000);
    });

    await t.step("h2 (TLS, ALPN) front → h2 (TLS) backend: unary and bidi", async () => {
      const [unary, bidi] = await grpcCalls(`localhost:${gw!.ports.tls}`, [
        { rpc: "Unary", req: { text: "tls" }, deadlineMs: 5000 },
        { rpc: "Bidi", reqs: [{ text: "p" }, { text: "q" }], deadlineMs: 5000 },
      ], certs.ca);
      assert.equal(unary.code, 0, unary.details);
      assert.equal(unary.response.text, "b:tls");
      assert.equal(unary.trailers["x-trailer"], "b-done");
      assert.equal(bidi.code, 0, bidi.details);
      assert.deepEqual(bidi.messages.map((m: Json) => m.text), ["P", "Q"]);
    });

    await t.step("the backend goes away → UNAVAILABLE", async () => {
      await a.stop();
      const [gone] = await grpcCalls(target, [{ rpc: "Unary", req: { text: "gone" }, deadlineMs: 5000 }]);
      assert.equal(gone.code, 14, `UNAVAILABLE, got ${gone.code} ${gone.details}`);
      assert.match(gone.details, /gateway/);
    });

    await t.step("gRPC events are counted", async () => {
      const text = await (await fetch(gw!.admin("/metrics"))).text();
      assert.ok(eventCount(text, "grpc_over_http1") >= 1);
      assert.ok(eventCount(text, "grpc_deadline_exceeded") >= 1);
    });

    await t.step(
      "the books balance: every call of every kind, deadlines and cancels included, has ended",
      async () => {
        await assertSettled(gw!, { clientsGone: false });
      },
    );
  } finally {
    if (gw) assert.equal(await gw.stop(), 0);
    await a.stop();
    await b.stop();
    await web.stop();
    await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("grpc-timeout and grpc.health.v1 wire helpers", () => {
  assert.equal(parseGrpcTimeout("100m"), 100);
  assert.equal(parseGrpcTimeout("5S"), 5000);
  assert.equal(parseGrpcTimeout("2M"), 120_000);
  assert.equal(parseGrpcTimeout("1H"), 3_600_000);
  assert.equal(parseGrpcTimeout("1500u"), 1.5);
  assert.equal(parseGrpcTimeout("123456789m"), undefined, "at most 8 digits");
  assert.equal(parseGrpcTimeout("10s"), undefined, "units are case-sensitive");
  assert.equal(parseGrpcTimeout(""), undefined);
  assert.equal(formatGrpcTimeout(2000), "2000m");
  assert.equal(formatGrpcTimeout(1e9), "1000000S");
  assert.deepEqual(clampGrpcTimeout("60S", 2000), { ms: 2000, rewrite: true });
  assert.deepEqual(clampGrpcTimeout("1S", 2000), { ms: 1000, rewrite: false });
  assert.deepEqual(clampGrpcTimeout(undefined, 2000), { ms: 2000, rewrite: true });
  assert.deepEqual(clampGrpcTimeout("garbage", 2000), { ms: 2000, rewrite: true });
  for (const service of ["", "eg.test.Echo", "ü".repeat(200)]) {
    assert.equal(decodeHealthRequest(encodeHealthRequest(service)), service);
  }
  for (const status of [0, 1, 2, 3]) assert.equal(decodeHealthResponse(encodeHealthResponse(status)), status);
  assert.equal(decodeHealthRequest(new Uint8Array([0x0a, 5, 0x61])), undefined, "truncated string");
  assert.equal(decodeHealthRequest(new Uint8Array([0x08, 1])), undefined, "wrong wire type");
  const framed = frameMessage(encodeHealthResponse(1));
  assert.deepEqual([...framed], [0, 0, 0, 0, 2, 0x08, 1]);
  assert.deepEqual(unframeMessage(framed)?.msg, new Uint8Array([0x08, 1]));
  assert.equal(unframeMessage(framed.subarray(0, 6)), undefined);
  assert.equal(isGrpcContentType("application/grpc"), true);
  assert.equal(isGrpcContentType("application/grpc+proto"), true);
  assert.equal(isGrpcContentType("application/grpc-web"), false);
  assert.equal(isGrpcContentType("application/grpcx"), false);
  assert.equal(encodeGrpcMessage("100% ok\n"), "100%25 ok%0A");
});
