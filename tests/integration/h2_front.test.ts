/**
 * HTTP/2 fronts → HTTP/1.1 backend (the H2→H1 cell) with real peers: curl (h2c prior knowledge
 * and h2 over TLS via ALPN), node's http2 client (bodies of 0 B, 10 MB and 200 MB checked by
 * sha256, trailers both ways, 50 concurrent streams on one connection, a stalled reader),
 * h2load for many streams, and graceful drain (GOAWAY, in-flight stream completes).
 */

import assert from "node:assert/strict";
import { startGateway } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { run } from "../helpers/run.ts";
import { metricSum, until } from "../helpers/common.ts";
import { h2client, makeCerts, RawH2, rssKb } from "./h2_helpers.ts";
import { FrameType } from "../../src/http/h2/frames.ts";

const MB = 1_000_000;

Deno.test("h2 front → HTTP/1.1 backend: curl, node http2, h2load, stalled reader, drain", async (t) => {
  const certs = await makeCerts();
  const origin = await startOrigin("h1origin");
  const listener = (name: string, protocol: string, tls = "") => `
[[listeners]]
name = "${name}"
bind = "127.0.0.1:0"
protocol = "${protocol}"
max_body_size = "256MiB"
body_timeout = "1s"
${tls}
  [[listeners.routes]]
  pool = "app"
`;
  const gw = await startGateway(`
[runtime]
workers = 1
[observability]
admin_bind = "127.0.0.1:0"
access_log = false
${listener("web", "http")}
${listener("tls", "https", `tls = { cert = "${certs.cert}", key = "${certs.key}" }`)}
[[pools]]
name = "app"
  [[pools.backends]]
  address = "${origin.address}"
`);
  const h2c = `http://127.0.0.1:${gw.ports.web}`;
  const h2s = `https://localhost:${gw.ports.tls}`;
  try {
    await t.step(
      "curl: h2c prior knowledge and h2 over TLS (ALPN); HTTP/1.1 still served on both",
      async () => {
        const fmt = ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{http_version} %{size_download}"];
        let r = await run("curl", [...fmt, "--http2-prior-knowledge", `${h2c}/bytes/1000`]);
        assert.equal(r.stdout, "200 2 1000", r.stderr);
        r = await run("curl", [...fmt, "--http2", "--cacert", certs.ca, `${h2s}/bytes/1000`]);
        assert.equal(r.stdout, "200 2 1000", r.stderr);
        r = await run("curl", [...fmt, `${h2c}/bytes/1000`]);
        assert.equal(r.stdout, "200 1.1 1000", r.stderr);
        r = await run("curl", [...fmt, "--http1.1", "--cacert", certs.ca, `${h2s}/bytes/1000`]);
        assert.equal(r.stdout, "200 1.1 1000", r.stderr);
        r = await run("curl", [
          "-sS",
          "--http2-prior-knowledge",
          "--data-binary",
          "hello h2",
          `${h2c}/sha256`,
        ]);
        const j = JSON.parse(r.stdout);
        assert.equal(j.bytes, 8);
        assert.match(j.headers.via, /^2 expressgateway/);
        assert.equal(j.headers["x-forwarded-proto"], "http");
      },
    );

    await t.step(
      "received bytes count an h2 request's field block, as HTTP/1.1 counts its head",
      async () => {
        const received = () =>
          metricSum(gw.adminPort, /^expressgateway_received_bytes_total\{listener="web"\}/);
        const before = await received();
        const r = await run("curl", ["-sS", "-o", "/dev/null", "--http2-prior-knowledge", `${h2c}/bytes/10`]);
        assert.equal(r.code, 0, r.stderr);
        // A GET has no DATA: what is counted is the HEADERS block (curl's four pseudo-headers and
        // user-agent/accept, a few dozen octets HPACK-encoded).
        await until("the request's bytes counted", async () => await received() > before);
        const delta = await received() - before;
        assert.ok(delta > 10 && delta < 200, `received ${delta} bytes for one h2 GET`);
      },
    );

    await t.step("node http2 (h2c): 0 B, 10 MB, 200 MB both ways intact, trailers both ways", async () => {
      for (const n of [0, 10 * MB, 200 * MB]) {
        const r = await h2client({ op: "request", url: `${h2c}/bytes/${n}` });
        assert.equal(r.status, 200, JSON.stringify(r));
        assert.equal(r.bytes, n);
        assert.equal(r.sha256, r.expectSha256, `GET ${n}: body differs`);
      }
      for (const n of [0, 10 * MB, 200 * MB]) {
        const r = await h2client({
          op: "request",
          url: `${h2c}/sha256`,
          method: "POST",
          bytes: n,
          trailers: { "x-request-checksum": `n${n}` },
        });
        assert.equal(r.status, 200, JSON.stringify(r));
        const j = JSON.parse(r.text);
        assert.equal(j.bytes, n);
        assert.equal(j.sha256, r.sentSha256, `POST ${n}: body differs`);
        // H2 client trailers reach the HTTP/1.1 origin as chunked trailers.
        assert.equal(j.trailers["x-request-checksum"], `n${n}`);
      }
      const r = await h2client({ op: "request", url: `${h2c}/trailers` });
      assert.equal(r.text, "part one;part two");
      assert.equal(r.trailers["x-checksum"], "abc123");
    });

    await t.step("node http2 over TLS (ALPN h2): 10 MB both ways, content-length kept", async () => {
      let r = await h2client({ op: "request", url: `${h2s}/bytes/${10 * MB}`, ca: certs.ca });
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(r.sha256, r.expectSha256);
      assert.equal(r.headers["content-length"], String(10 * MB));
      r = await h2client({
        op: "request",
        url: `${h2s}/sha256`,
        method: "POST",
        bytes: 10 * MB,
        contentLength: true,
        ca: certs.ca,
      });
      const j = JSON.parse(r.text);
      assert.equal(j.sha256, r.sentSha256);
      assert.equal(j.headers["content-length"], String(10 * MB));
      assert.equal(j.headers["x-forwarded-proto"], "https");
    });

    await t.step("50 concurrent streams on one connection all succeed", async () => {
      const r = await h2client({ op: "concurrent", url: `${h2c}/bytes/100000`, n: 50 });
      assert.deepEqual(r.errors, []);
      assert.deepEqual(r.statuses, new Array(50).fill(200));
      assert.deepEqual(r.bytes, new Array(50).fill(100000));
      const slow = await h2client({ op: "concurrent", url: `${h2c}/slow?ms=300`, n: 50 });
      assert.deepEqual(slow.statuses, new Array(50).fill(200));
    });

    await t.step("h2load: 2000 requests, 4 connections × 10 streams, all 2xx", async () => {
      const r = await run("h2load", ["-n", "2000", "-c", "4", "-m", "10", `${h2c}/bytes/100`], {
        timeoutMs: 60_000,
      });
      assert.match(r.stdout, /requests: 2000 total, 2000 started, 2000 done, 2000 succeeded/, r.stdout);
      assert.match(r.stdout, /status codes: 2000 2xx/);
    });

    await t.step("a stalled request body gets 408 after body_timeout; HEAD gets no DATA", async () => {
      const c = await RawH2.connect(gw.ports.web);
      try {
        const post: Array<[string, string]> = [
          [":method", "POST"],
          [":scheme", "http"],
          [":path", "/sha256"],
          [
            ":authority",
            "x",
          ],
        ];
        await c.send(c.headers(1, post, 0x4)); // END_HEADERS, no END_STREAM, then nothing
        const h = await c.waitFor(FrameType.HEADERS, 1, 8000);
        assert.ok(h && h !== "closed", "no response to a stalled body");
        assert.deepEqual(c.lastHeaders[0], [":status", "408"]);
      } finally {
        c.close();
      }
      const r = await run("curl", ["-sS", "-I", "--http2-prior-knowledge", `${h2c}/bytes/5000`]);
      assert.match(r.stdout, /^HTTP\/2 200/);
      assert.match(r.stdout, /content-length: 5000/);
    });

    await t.step("a stalled reader stalls its stream, not the gateway's memory", async () => {
      const pid = gw.child.pid;
      const before = await rssKb(pid);
      const stall = h2client({ op: "stall", url: `${h2c}/bytes/${200 * MB}`, holdMs: 3000 });
      await new Promise((r) => setTimeout(r, 1500));
      // Another client is served meanwhile.
      const other = await h2client({ op: "request", url: `${h2c}/bytes/1000` });
      assert.equal(other.status, 200);
      const during = await rssKb(pid);
      const s = await stall;
      assert.ok(s.bytes > 0, JSON.stringify(s));
      // The origin keeps offering 200 MB; the gateway holds about a window's worth, not the body.
      assert.ok(during - before < 64 * 1024, `RSS grew by ${during - before} kB during the stall`);
    });

    await t.step("drain: GOAWAY, the in-flight stream completes, exit code 0", async () => {
      const seen = await origin.requests();
      const slow = h2client({ op: "request", url: `${h2c}/slow?ms=1000` });
      // Stop only once the stream is in flight (it reached the origin).
      for (let i = 0; i < 100 && await origin.requests() === seen; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const code = await gw.stop();
      const r = await slow;
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.match(r.text, /slow h1origin/);
      assert.equal(code, 0);
    });
  } finally {
    await gw.stop();
    await origin.stop();
    await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
  }
});
