/**
 * HTTP/3 backends (`protocol = "h3"` in a pool) against independent HTTP/3 servers: Debian's
 * ngtcp2 `gtlsserver` (serves files from a directory) and Caddy (its HTTP/3 front reverse-
 * proxying to the node origin). Gateway B has http, https and quic fronts routing by host to
 * those h3 pools, and to gateway A's quic listener (A forwards to the node origin: H3→H3 with
 * trailers, which neither gtlsserver nor Caddy sends over HTTP/3).
 *
 * Checked: 10 MB down (sha256) from gtlsserver and through Caddy, 10 MB up through Caddy,
 * H2→H3 with curl, H3→H3 with gtlsclient, trailers H1→H3→H3→H1, certificate verification
 * (a pool trusting another CA gets 502, nothing is relayed), an unreachable backend → 502
 * within connect_timeout, and `tls.verify = false` refused at --check.
 */

import assert from "node:assert/strict";
import {
  configHead,
  type GatewayProcess,
  h3PoolConfig,
  quicGatewayConfig,
  startGateway,
} from "../helpers/gateway.ts";
import { H3Client, makeTestPki } from "../helpers/h3_client.ts";
import { startOrigin } from "../helpers/origin.ts";
import { run } from "../helpers/run.ts";
import { freeTcpUdpPort as freePort, metricSum, sha256, stopChild, until } from "../helpers/common.ts";
import { type CaddyH3, startCaddyH3, waitForH3 as waitH3 } from "../helpers/caddy.ts";

/** GET through gateway B with a Host header (fetch cannot set Host); body saved to `out`. */
async function viaHost(url: string, host: string, out: string): Promise<{ status: number; headers: string }> {
  const r = await run("curl", [
    "-sS",
    "-H",
    `host: ${host}`,
    "-o",
    out,
    "-D",
    "-",
    "-w",
    "%{http_code}",
    url,
  ]);
  if (r.code !== 0) throw new Error(`curl ${url}: ${r.stderr}`);
  return { status: Number(r.stdout.slice(-3)), headers: r.stdout };
}

Deno.test("h3 backends: gtlsserver, Caddy and another gateway behind h3 pools", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-h3up-" });
  const pki = await makeTestPki(dir);
  const otherDir = `${dir}/other`;
  await Deno.mkdir(otherDir);
  const other = await makeTestPki(otherDir);
  const htdocs = `${dir}/htdocs`;
  await Deno.mkdir(htdocs);
  const big = crypto.getRandomValues(new Uint8Array(65536));
  const file = new Uint8Array(10 * 1024 * 1024);
  for (let i = 0; i < file.length; i += big.length) file.set(big, i);
  await Deno.writeFile(`${htdocs}/ten`, file);
  await Deno.writeTextFile(`${htdocs}/hello`, "hello from gtlsserver\n");

  const origin = await startOrigin("o1");
  const gsPort = freePort();
  const gs = new Deno.Command("gtlsserver", {
    args: ["-q", "-d", htdocs, "127.0.0.1", String(gsPort), pki.key, pki.cert],
    stdout: "null",
    stderr: "null",
    stdin: "null",
  }).spawn();
  let caddy: CaddyH3 | undefined;
  let a: GatewayProcess | undefined;
  let b: GatewayProcess | undefined;
  try {
    await waitH3(gsPort, pki.caPem, "/hello");
    caddy = await startCaddyH3(dir, pki, origin.address);
    a = await startGateway(quicGatewayConfig(pki, origin.address, { pool: "origin" }));
    const deadPort = freePort();
    b = await startGateway(`${configHead()}${
      ["web:http", "tls:https", "q:quic"].map((x) => {
        const [name, proto] = x.split(":");
        return `
[[listeners]]
name = "${name}"
bind = "127.0.0.1:0"
protocol = "${proto}"
${proto === "http" ? "" : `tls = { cert = "${pki.cert}", key = "${pki.key}" }`}
  [[listeners.routes]]
  host = "gs.test"
  pool = "gs"
  [[listeners.routes]]
  host = "caddy.test"
  pool = "caddy"
  [[listeners.routes]]
  host = "wrongca.test"
  pool = "wrongca"
  [[listeners.routes]]
  host = "dead.test"
  pool = "dead"
  [[listeners.routes]]
  pool = "gwa"`;
      }).join("\n")
    }
${h3PoolConfig("gs", `127.0.0.1:${gsPort}`, pki.ca)}
${h3PoolConfig("caddy", `127.0.0.1:${caddy.port}`, pki.ca, { backend: `  host_header = "localhost"` })}
${h3PoolConfig("gwa", `127.0.0.1:${a.ports.q}`, pki.ca)}
${h3PoolConfig("wrongca", `127.0.0.1:${gsPort}`, other.ca)}
${h3PoolConfig("dead", `127.0.0.1:${deadPort}`, pki.ca, { pool: `connect_timeout = "1s"` })}
`);
    const web = `http://127.0.0.1:${b.ports.web}`;

    await t.step("H1→H3 gtlsserver: 10 MB file, sha256 equal", async () => {
      const res = await viaHost(`${web}/ten`, "gs.test", `${dir}/ten.out`);
      assert.equal(res.status, 200);
      assert.match(res.headers, /^server: nghttp3\/ngtcp2 server\r?$/mi);
      assert.match(res.headers, new RegExp(`^content-length: ${file.length}\\r$`, "mi"));
      assert.equal(await sha256(await Deno.readFile(`${dir}/ten.out`)), await sha256(file));
      assert.equal((await viaHost(`${web}/hello`, "gs.test", `${dir}/hello.out`)).status, 200);
      assert.equal(await Deno.readTextFile(`${dir}/hello.out`), "hello from gtlsserver\n");
      // Both requests went over one pooled QUIC connection, and the pool gauge shows it.
      const gauge = (name: string) =>
        metricSum(b!.adminPort, new RegExp(`^expressgateway_${name}\\{pool="gs"`));
      assert.equal(await gauge("upstream_connects_total"), 1);
      assert.equal(
        await metricSum(b!.adminPort, /^expressgateway_upstream_connections\{pool="gs".*state="open"/),
        1,
      );
      assert.equal(await gauge("backend_picks_total"), 2);
    });

    await t.step("H1→H3 Caddy→H1: 10 MB down and 10 MB up, sha256 equal", async () => {
      const viaCaddy = await viaHost(`${web}/bytes/10485760`, "caddy.test", `${dir}/down.out`);
      assert.equal(viaCaddy.status, 200);
      assert.match(viaCaddy.headers, /^server: Caddy\r?$/mi);
      const down = await Deno.readFile(`${dir}/down.out`);
      const want = new Uint8Array(
        await (await fetch(`http://${origin.address}/bytes/10485760`)).arrayBuffer(),
      );
      assert.equal(down.length, want.length);
      assert.equal(await sha256(down), await sha256(want));
      await Deno.writeFile(`${dir}/up.bin`, file);
      const r = await run("curl", [
        "-sS",
        "-H",
        "host: caddy.test",
        "--data-binary",
        `@${dir}/up.bin`,
        `${web}/sha256`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const seen = JSON.parse(r.stdout);
      assert.equal(seen.bytes, file.length);
      assert.equal(seen.sha256, await sha256(file));
    });

    await t.step("H2→H3: curl --http2 over the https front to Caddy", async () => {
      const r = await run("curl", [
        "-sS",
        "--http2",
        "--cacert",
        pki.ca,
        "-H",
        "host: caddy.test",
        "-D",
        `${dir}/h2.headers`,
        "-o",
        `${dir}/h2.bin`,
        "-w",
        "%{http_version} %{http_code}",
        `https://localhost:${b!.ports.tls}/bytes/1048576`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, "2 200");
      assert.match(
        await Deno.readTextFile(`${dir}/h2.headers`),
        /^server: Caddy\r?$/mi,
        "answered through Caddy",
      );
      const want = new Uint8Array(
        await (await fetch(`http://${origin.address}/bytes/1048576`)).arrayBuffer(),
      );
      assert.equal(await sha256(await Deno.readFile(`${dir}/h2.bin`)), await sha256(want));
    });

    await t.step("H3→H3: gtlsclient through gateway B's quic front to gateway A", async () => {
      await Deno.mkdir(`${dir}/dl`);
      const r = await run("gtlsclient", [
        "-q",
        "--exit-on-all-streams-close",
        "--timeout=10s",
        "--download",
        `${dir}/dl`,
        "127.0.0.1",
        String(b!.ports.q),
        "https://localhost/bytes/2000000",
      ], { timeoutMs: 30_000 });
      assert.equal(r.code, 0, r.stderr);
      const want = new Uint8Array(
        await (await fetch(`http://${origin.address}/bytes/2000000`)).arrayBuffer(),
      );
      assert.equal(await sha256(await Deno.readFile(`${dir}/dl/2000000`)), await sha256(want));
    });

    await t.step("trailers H1→H3→H3→H1 both ways", async () => {
      const down = await run("curl", ["-sS", "--raw", "-H", "te: trailers", `${web}/trailers`]);
      assert.equal(down.code, 0, down.stderr);
      assert.match(down.stdout, /part one;\r\n8\r\npart two\r\n0\r\n/);
      assert.match(down.stdout, /\r\nx-checksum: abc123\r\n/i);
      // Up: the h3 test client → B's quic front → A → origin, trailers included.
      const c = await H3Client.connect({ port: b!.ports.q, ca: pki.caPem });
      try {
        const up = await c.request({
          method: "POST",
          path: "/sha256",
          headers: [["te", "trailers"]],
          body: new TextEncoder().encode("hello"),
          trailers: [["x-up", "42"]],
        });
        assert.equal(up.status, 200);
        const seen = JSON.parse(new TextDecoder().decode(up.body));
        assert.equal(seen.bytes, 5);
        assert.deepEqual(seen.trailers, { "x-up": "42" });
      } finally {
        c.close();
      }
    });

    await t.step("a backend whose certificate our CA did not sign: 502, nothing relayed", async () => {
      const res = await viaHost(`${web}/hello`, "wrongca.test", `${dir}/wrong.out`);
      assert.equal(res.status, 502);
      assert.doesNotMatch(await Deno.readTextFile(`${dir}/wrong.out`), /gtlsserver/);
    });

    await t.step("an unreachable h3 backend: 502 within connect_timeout", async () => {
      const t0 = Date.now();
      const res = await viaHost(`${web}/x`, "dead.test", `${dir}/dead.out`);
      assert.ok(res.status === 502 || res.status === 504, `status ${res.status}`);
      assert.ok(Date.now() - t0 < 8000);
    });

    await t.step("--check refuses tls.verify = false on an h3 backend", async () => {
      const conf = `${dir}/bad.toml`;
      await Deno.writeTextFile(
        conf,
        `[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  pool = "p"
[[pools]]
name = "p"
  [[pools.backends]]
  address = "127.0.0.1:4433"
  protocol = "h3"
  tls = { verify = false }
`,
      );
      const r = await run(Deno.execPath(), [
        "run",
        "-A",
        new URL("../../main.ts", import.meta.url).pathname,
        "--check",
        conf,
      ]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stdout + r.stderr, /tls\.verify: h3 backends are always verified/);
    });
  } finally {
    await b?.stop();
    await a?.stop();
    await stopChild(gs);
    await caddy?.stop();
    await origin.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("active health checks of h3 backends: an HTTP/3 request (kind http) or the QUIC handshake (kind tcp)", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-h3health-" });
  const pki = await makeTestPki(dir);
  const dead = freePort(); // nothing answers QUIC there: every probe times out
  let back: GatewayProcess | undefined;
  let front: GatewayProcess | undefined;
  try {
    // The live h3 backend is another gateway: /healthz answers 200 "ready", /sick 503.
    back = await startGateway(quicGatewayConfig(pki, "127.0.0.1:9", {
      routes: `  [[listeners.routes]]
  path_prefix = "/healthz"
  respond = { status = 200, body = "ready" }
  [[listeners.routes]]
  path_prefix = "/sick"
  respond = { status = 503, body = "down" }
  [[listeners.routes]]
  respond = { status = 200, body = "from the h3 backend" }`,
    }));
    const live = `127.0.0.1:${back.ports.q}`;
    const deadAddr = `127.0.0.1:${dead}`;
    const health = (kind: string, extra = "") =>
      `[pools.health]\nkind = "${kind}"\ninterval = "100ms"\njitter = "0s"\ntimeout = "300ms"\nrise = 1\nfall = 1\n${extra}`;
    const pool = (name: string, h: string) => h3PoolConfig(name, [live, deadAddr], pki.ca, { pool: h });
    front = await startGateway(`${configHead()}
[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  path_prefix = "/tcp"
  pool = "bytcp"
  [[listeners.routes]]
  path_prefix = "/sick"
  pool = "bysick"
  [[listeners.routes]]
  pool = "byhttp"
${pool("byhttp", health("http", 'path = "/healthz"\nbody_contains = "ready"'))}
${pool("bytcp", health("tcp"))}
${pool("bysick", health("http", 'path = "/sick"'))}
`);
    const gw = front;
    const status = async () =>
      (await (await fetch(gw.admin("/status/backends"))).json()).backends as Array<
        { pool: string; address: string; up: boolean; reason: string }
      >;
    const upOf = async (pool: string, address: string) =>
      (await status()).find((b) => b.pool === pool && b.address === address);
    /** health_probes_total of one backend and result is at least 1 in `metrics`. */
    const assertProbed = (metrics: string, pool: string, backend: string, result: "pass" | "fail") =>
      assert.match(
        metrics,
        new RegExp(
          `expressgateway_health_probes_total\\{pool="${pool}",backend="${backend}",result="${result}"\\} [1-9]`,
        ),
      );

    await t.step(
      "kind http over HTTP/3: the live backend passes, the silent one is marked down",
      async () => {
        await until("probes settled", async () => (await upOf("byhttp", deadAddr))?.up === false);
        assert.equal((await upOf("byhttp", live))?.up, true);
        const probes = await (await fetch(gw.admin("/metrics"))).text();
        assertProbed(probes, "byhttp", live, "pass");
        assertProbed(probes, "byhttp", deadAddr, "fail");
        // Every request now goes to the live backend (no 502 from picking the dead one).
        for (let i = 0; i < 6; i++) {
          const r = await fetch(gw.url("web", `/x${i}`));
          assert.equal(r.status, 200);
          assert.equal(await r.text(), "from the h3 backend");
        }
      },
    );

    await t.step("kind tcp for an h3 backend: the QUIC handshake decides", async () => {
      await until("tcp probes settled", async () => (await upOf("bytcp", deadAddr))?.up === false);
      assert.equal((await upOf("bytcp", live))?.up, true);
      assertProbed(await (await fetch(gw.admin("/metrics"))).text(), "bytcp", live, "pass");
    });

    await t.step("a 503 from the probe path over HTTP/3 marks the backend down", async () => {
      await until("sick probe settled", async () => (await upOf("bysick", live))?.up === false);
      assert.match((await upOf("bysick", live))!.reason, /503/);
    });
  } finally {
    await front?.stop();
    await back?.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
