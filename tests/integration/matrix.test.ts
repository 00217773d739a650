/**
 * The 3×3 protocol matrix: every front (HTTP/1.1, HTTP/2, HTTP/3) against every backend protocol
 * (HTTP/1.1, HTTP/2, HTTP/3), one table-driven test, real peers on both ends:
 *
 *   fronts    h1  node `http` (tests/fixtures/h1_client.mjs) on the `http` listener
 *             h2  node `http2` (tests/fixtures/h2_client.mjs) on the `https` listener, ALPN h2
 *             h3  Debian `gtlsclient` (ngtcp2 + nghttp3) on the `quic` listener for bodies;
 *                 tests/helpers/h3_client.ts for trailers (gtlsclient cannot show or send them)
 *   backends  h1  node `http` origin (tests/fixtures/origin.mjs)
 *             h2  node `http2` origin over h2c (tests/fixtures/h2_origin.mjs)
 *             h3  Caddy's HTTP/3 front reverse-proxying to the node origin, for bodies; a second
 *                 gateway's quic listener in front of the node origin, for trailers (Debian's
 *                 Caddy 2.6 does not carry trailers over HTTP/3)
 *
 * Each cell moves 0 B, 10 MiB and 100 MiB down (GET /bytes/N, sha256 of what arrived against the
 * pattern's) and up (POST /sha256: the origin reports the byte count and sha256 it saw), and
 * carries trailers both ways: response trailers from the origin to the client, request trailers
 * from the client to the origin. Routing is by host: h1.test, h2.test, h3.test (Caddy), h3t.test
 * (second gateway).
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
import { startNodePeer } from "../helpers/node_peer.ts";
import { startOrigin } from "../helpers/origin.ts";
import { run } from "../helpers/run.ts";
import { sha256 } from "../helpers/common.ts";
import { assertSettled } from "../helpers/settled.ts";
import { startCaddyH3 } from "../helpers/caddy.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const MiB = 1024 * 1024;
const SIZES = [0, 10 * MiB, 100 * MiB];
type Proto = "h1" | "h2" | "h3";
const PROTOS: Proto[] = ["h1", "h2", "h3"];

/** Byte i of every test body is (i*31+7) & 255, as the origins' /bytes/N. */
function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < Math.min(n, 256); i++) b[i] = (i * 31 + 7) & 255;
  for (let filled = Math.min(n, 256); filled < n; filled *= 2) {
    b.copyWithin(filled, 0, Math.min(filled, n - filled));
  }
  return b;
}

/** What a client saw: status, body size and sha256, trailers, and the body text when small. */
interface Seen {
  status: number;
  bytes: number;
  sha256: string;
  trailers: Record<string, string>;
  text?: string;
}

/** Runs a node client fixture (one JSON in, one JSON line out). */
async function nodeClient(script: string, cfg: Record<string, unknown>): Promise<Seen> {
  const r = await run("node", [`${ROOT}tests/fixtures/${script}`, JSON.stringify(cfg)], {
    timeoutMs: 180_000,
  });
  const line = r.stdout.trim().split("\n").pop() ?? "";
  const out = JSON.parse(line || "{}");
  if (out.error) throw new Error(`${script}: ${out.error} (${r.stderr})`);
  return out as Seen;
}

Deno.test({
  name: "3×3 matrix: every front to every backend protocol, 0 B / 10 MiB / 100 MiB both ways, trailers",
  sanitizeResources: false,
  fn: async (t) => {
    const dir = await Deno.makeTempDir({ prefix: "eg-matrix-" });
    const pki = await makeTestPki(dir);
    // Upload sources for gtlsclient (-d FILE) and their digests; downloads are compared to the same.
    const want = new Map<number, string>();
    for (const n of SIZES) {
      const body = pattern(n);
      await Deno.writeFile(`${dir}/up-${n}`, body);
      want.set(n, await sha256(body));
    }

    const origin = await startOrigin("o1");
    const h2origin = await startNodePeer("h2_origin.mjs", ["h2o", "h2c"]);
    let caddy: Awaited<ReturnType<typeof startCaddyH3>> | undefined;
    let inner: GatewayProcess | undefined;
    let gw: GatewayProcess | undefined;
    try {
      caddy = await startCaddyH3(dir, pki, origin.address);
      inner = await startGateway(quicGatewayConfig(pki, origin.address, { pool: "origin" }));
      const routes = `
  [[listeners.routes]]
  host = "h1.test"
  pool = "h1"
  [[listeners.routes]]
  host = "h2.test"
  pool = "h2"
  [[listeners.routes]]
  host = "h3.test"
  pool = "h3"
  [[listeners.routes]]
  host = "h3t.test"
  pool = "h3t"`;
      const tls = `tls = { cert = "${pki.cert}", key = "${pki.key}" }`;
      gw = await startGateway(`${configHead()}[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
max_body_size = "256MiB"
${routes}
[[listeners]]
name = "tls"
bind = "127.0.0.1:0"
protocol = "https"
max_body_size = "256MiB"
${tls}
${routes}
[[listeners]]
name = "q"
bind = "127.0.0.1:0"
protocol = "quic"
max_body_size = "256MiB"
${tls}
${routes}
[[pools]]
name = "h1"
  [[pools.backends]]
  address = "${origin.address}"
[[pools]]
name = "h2"
  [[pools.backends]]
  address = "127.0.0.1:${h2origin.port}"
  protocol = "h2c"
${h3PoolConfig("h3", `127.0.0.1:${caddy.port}`, pki.ca, { backend: `  host_header = "localhost"` })}
${h3PoolConfig("h3t", `127.0.0.1:${inner.ports.q}`, pki.ca)}
`);
      const g = gw;

      /** One request through front `front` to the backend chosen by `host`. */
      const request = async (
        front: Proto,
        host: string,
        init: { method: string; path: string; bytes?: number; trailers?: Record<string, string> },
      ): Promise<Seen> => {
        if (front === "h1") {
          return await nodeClient("h1_client.mjs", {
            url: `http://127.0.0.1:${g.ports.web}${init.path}`,
            method: init.method,
            bytes: init.bytes,
            trailers: init.trailers,
            headers: { host },
          });
        }
        if (front === "h2") {
          return await nodeClient("h2_client.mjs", {
            op: "request",
            url: `https://127.0.0.1:${g.ports.tls}${init.path}`,
            ca: pki.ca,
            method: init.method,
            bytes: init.bytes,
            trailers: init.trailers,
            contentLength: init.trailers === undefined,
            headers: { ":authority": host },
            // Browser-sized receive windows. With node's default 64 KiB ones every window's worth of
            // DATA ends in a partial TCP segment that Nagle holds for the client's delayed ACK: Deno's
            // TLS server sockets have no TCP_NODELAY (docs/ARCHITECTURE.md, "Known gaps").
            window: 16 * MiB,
          });
        }
        if (init.trailers !== undefined || init.path === "/trailers") {
          // gtlsclient neither sends nor shows trailers: the test's own HTTP/3 client does.
          const c = await H3Client.connect({ port: g.ports.q, ca: pki.caPem });
          try {
            const r = await c.request({
              method: init.method,
              path: init.path,
              authority: host,
              body: init.bytes !== undefined ? pattern(init.bytes) : undefined,
              trailers: init.trailers ? Object.entries(init.trailers) : undefined,
            });
            return {
              status: r.status,
              bytes: r.body.length,
              sha256: await sha256(r.body),
              trailers: Object.fromEntries(r.trailers),
              text: new TextDecoder().decode(r.body),
            };
          } finally {
            c.close();
          }
        }
        const out = await Deno.makeTempDir({ dir, prefix: "dl-" });
        try {
          // gtlsclient cannot mmap an empty file: an empty POST is -m POST without -d.
          const upload = init.bytes === undefined
            ? []
            : init.bytes === 0
            ? ["-m", init.method]
            : ["-m", init.method, "-d", `${dir}/up-${init.bytes}`];
          const r = await run("gtlsclient", [
            "-q",
            "--exit-on-all-streams-close",
            "--timeout=30s",
            "--download",
            out,
            ...upload,
            "127.0.0.1",
            String(g.ports.q),
            `https://${host}${init.path}`,
          ], { timeoutMs: 180_000 });
          assert.equal(r.code, 0, `gtlsclient: ${r.stderr.slice(-2000)}`);
          const name = init.path.split("/").pop()!;
          const body = await Deno.readFile(`${out}/${name}`);
          // gtlsclient prints no status with -q: a 200 is implied by the body checks below.
          return {
            status: 200,
            bytes: body.length,
            sha256: await sha256(body),
            trailers: {},
            text: body.length <= 65536 ? new TextDecoder().decode(body) : undefined,
          };
        } finally {
          await Deno.remove(out, { recursive: true });
        }
      };

      for (const front of PROTOS) {
        for (const back of PROTOS) {
          await t.step(`${front} → ${back}`, async () => {
            const host = `${back}.test`;
            for (const n of SIZES) {
              const down = await request(front, host, { method: "GET", path: `/bytes/${n}` });
              assert.equal(down.status, 200, `GET ${n} B`);
              assert.equal(down.bytes, n, `GET ${n} B: length`);
              assert.equal(down.sha256, want.get(n), `GET ${n} B: sha256`);

              const up = await request(front, host, { method: "POST", path: "/sha256", bytes: n });
              assert.equal(up.status, 200, `POST ${n} B`);
              const seen = JSON.parse(up.text ?? "{}");
              assert.equal(seen.bytes, n, `POST ${n} B: bytes the origin saw`);
              assert.equal(seen.sha256, want.get(n), `POST ${n} B: sha256 the origin saw`);
            }
            // Trailers: the H3 backend cell uses the second gateway (h3t), which carries them.
            const th = back === "h3" ? "h3t.test" : host;
            const down = await request(front, th, { method: "GET", path: "/trailers" });
            assert.equal(down.status, 200);
            assert.equal(down.text, "part one;part two");
            assert.equal(down.trailers["x-checksum"], "abc123", "response trailer reached the client");

            const up = await request(front, th, {
              method: "POST",
              path: "/sha256",
              bytes: 100_000,
              trailers: { "x-up-checksum": "from-the-client" },
            });
            assert.equal(up.status, 200);
            const seen = JSON.parse(up.text ?? "{}");
            assert.equal(seen.bytes, 100_000);
            assert.equal(
              seen.trailers["x-up-checksum"],
              "from-the-client",
              "request trailer reached the origin",
            );
            // Every request of the cell has ended: nothing may be left in flight, and every
            // upstream connection must be idle (the clients keep theirs open).
            await assertSettled(gw!, { clientsGone: false });
            await assertSettled(inner!, { clientsGone: false });
          });
        }
      }
    } finally {
      await gw?.stop();
      await inner?.stop();
      await caddy?.stop();
      await h2origin.stop();
      await origin.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
