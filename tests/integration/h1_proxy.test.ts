/**
 * The HTTP/1.1 data path end to end, with real peers: curl and a raw TCP client in front of
 * the gateway, node's http origin (tests/fixtures/origin.mjs) behind it. Bodies of 0 B, 1 B,
 * 10 MB and 200 MB in both framings and both directions arrive intact (sha256 on the far
 * side); trailers, pipelining, 100-continue, HEAD/204/304, keep-alive reuse, header hygiene,
 * broken and silent backends, body caps and idempotent retries.
 */

import assert from "node:assert/strict";
import { type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { type Origin, startOrigin } from "../helpers/origin.ts";
import { run } from "../helpers/run.ts";
import { RawClient, rawOnce, text } from "../unit/h1/raw_client.ts";

const MB = 1024 * 1024;

async function sha256Hex(b: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", b);
  return [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** The origin's /bytes/N content: byte i is (i * 31 + 7) & 255. */
function originPattern(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < Math.min(n, 256); i++) out[i] = (i * 31 + 7) & 255;
  for (let have = 256; have < n; have *= 2) out.copyWithin(have, 0, Math.min(have, n - have));
  return out;
}

/** Pseudo-random upload content (xorshift32): a shifted or repeated block would change the hash. */
function noise(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  const words = new Uint32Array(out.buffer, 0, n >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < n; i++) out[i] = i & 255;
  return out;
}

async function stats(o: Origin): Promise<{ requests: number; completed: number; connections: number }> {
  return await (await fetch(`http://127.0.0.1:${o.port}/__stats`)).json();
}

async function metric(gw: GatewayProcess, re: RegExp): Promise<number> {
  const body = await (await fetch(gw.admin("/metrics"))).text();
  let sum = 0;
  for (const line of body.split("\n")) {
    if (re.test(line)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

function deadPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function config(origin: Origin, dead: number): string {
  return `
[observability]
admin_bind = "127.0.0.1:0"


[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
max_body_size = "1GiB"
  [[listeners.routes]]
  path_prefix = "/hang"
  pool = "short"
  [[listeners.routes]]
  path_prefix = "/retry/"
  pool = "mixed"
  [[listeners.routes]]
  host = "127.0.0.1"
  pool = "app"
  [[listeners.routes]]
  host = "h"
  pool = "app"

[[listeners]]
name = "small"
bind = "127.0.0.1:0"
protocol = "http"
max_body_size = "1KiB"
  [[listeners.routes]]
  pool = "app"

[[pools]]
name = "app"
  [[pools.backends]]
  address = "${origin.address}"

[[pools]]
name = "short"
response_timeout = "1s"
  [[pools.backends]]
  address = "${origin.address}"

[[pools]]
name = "mixed"
connect_timeout = "1s"
  [[pools.backends]]
  address = "127.0.0.1:${dead}"
  [[pools.backends]]
  address = "${origin.address}"
`;
}

Deno.test("HTTP/1.1 proxy data path against curl, a raw client and node's http origin", async (t) => {
  const origin = await startOrigin("h1-origin");
  const dir = await Deno.makeTempDir({ prefix: "eg-h1-" });
  let gw: GatewayProcess | undefined;
  try {
    gw = await startGateway(config(origin, deadPort()));
    const g = gw;
    const port = g.ports.web;
    const base = `http://127.0.0.1:${port}`;

    await t.step(
      "downloads 0 B, 1 B, 10 MB, 200 MB with Content-Length and chunked arrive intact",
      async () => {
        for (const n of [0, 1, 10 * MB, 200 * MB]) {
          const want = await sha256Hex(originPattern(n));
          for (const chunked of [false, true]) {
            const hdr = `${dir}/h-${n}-${chunked}`;
            const url = `${base}/bytes/${n}${chunked ? "?chunked=1" : ""}`;
            const r = await run("bash", [
              "-c",
              `set -o pipefail; curl -sS --fail -D ${hdr} '${url}' | sha256sum`,
            ], { timeoutMs: 60_000 });
            assert.equal(r.code, 0, r.stderr);
            assert.equal(r.stdout.split(" ")[0], want, `${url}`);
            const head = (await Deno.readTextFile(hdr)).toLowerCase();
            if (chunked && n > 0) assert.match(head, /transfer-encoding: chunked/, url);
            if (!chunked) assert.match(head, new RegExp(`content-length: ${n}\\r\\n`), url);
          }
        }
      },
    );

    await t.step(
      "uploads 0 B, 1 B, 10 MB, 200 MB with Content-Length and chunked arrive intact",
      async () => {
        for (const n of [0, 1, 10 * MB, 200 * MB]) {
          const data = noise(n, n + 1);
          const want = await sha256Hex(data);
          const file = `${dir}/up-${n}`;
          await Deno.writeFile(file, data);
          for (const chunked of [false, true]) {
            const args = [
              "-sS",
              "--fail",
              "--data-binary",
              `@${file}`,
              "-H",
              "content-type: application/octet-stream",
            ];
            if (chunked) args.push("-H", "Transfer-Encoding: chunked");
            const r = await run("curl", [...args, `${base}/sha256`], { timeoutMs: 60_000 });
            assert.equal(r.code, 0, r.stderr);
            const j = JSON.parse(r.stdout);
            assert.equal(j.bytes, n, `${n} chunked=${chunked}`);
            assert.equal(j.sha256, want, `${n} chunked=${chunked}`);
            // the framing the origin saw is the gateway's own: CL stays CL, chunked stays chunked
            if (chunked) assert.equal(j.headers["transfer-encoding"], "chunked");
            else assert.equal(j.headers["content-length"], String(n));
          }
          await Deno.remove(file);
        }
      },
    );

    await t.step(
      "response trailers reach a client that sent TE: trailers, and only that client",
      async () => {
        const c = await RawClient.connect(port);
        try {
          await c.write("GET /trailers HTTP/1.1\r\nHost: h\r\nTE: trailers\r\n\r\n");
          const r = await c.readResponse();
          assert.equal(r.status, 200);
          assert.equal(text(r.body), "part one;part two");
          assert.equal(r.trailers.get("x-checksum"), "abc123");
          // same connection, no TE: trailers dropped, body intact, connection still in sync
          await c.write("GET /trailers HTTP/1.1\r\nHost: h\r\n\r\n");
          const r2 = await c.readResponse();
          assert.equal(text(r2.body), "part one;part two");
          assert.equal(r2.trailers.size, 0);
          await c.write("GET /status/200 HTTP/1.1\r\nHost: h\r\n\r\n");
          assert.equal((await c.readResponse()).status, 200);
        } finally {
          c.close();
        }
      },
    );

    await t.step(
      "request trailers of a chunked upload reach the origin (framing fields dropped)",
      async () => {
        const c = await RawClient.connect(port);
        try {
          await c.write(
            "POST /sha256 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: x-req-sum\r\n\r\n" +
              "5\r\nhello\r\n0\r\nX-Req-Sum: 42\r\nContent-Length: 999\r\n\r\n",
          );
          const r = await c.readResponse();
          assert.equal(r.status, 200);
          const j = JSON.parse(text(r.body));
          assert.equal(j.bytes, 5);
          assert.deepEqual(j.trailers, { "x-req-sum": "42" });
        } finally {
          c.close();
        }
      },
    );

    await t.step("three pipelined requests in one write are answered in order", async () => {
      const c = await RawClient.connect(port);
      try {
        await c.write(
          "GET /slow?ms=300 HTTP/1.1\r\nHost: h\r\n\r\n" +
            "POST /sha256 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc" +
            "GET /status/202 HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        const r1 = await c.readResponse();
        assert.equal(r1.status, 200);
        assert.equal(text(r1.body), "slow h1-origin\n");
        const r2 = await c.readResponse();
        assert.equal(JSON.parse(text(r2.body)).bytes, 3);
        const r3 = await c.readResponse();
        assert.equal(r3.status, 202);
      } finally {
        c.close();
      }
    });

    await t.step(
      "Expect: 100-continue: the gateway answers 100 itself, the origin never sees Expect",
      async () => {
        const file = `${dir}/small`;
        await Deno.writeFile(file, noise(5000, 9));
        const r = await run("curl", [
          "-sS",
          "-v",
          "--fail",
          "-H",
          "Expect: 100-continue",
          "--data-binary",
          `@${file}`,
          `${base}/headers`,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /< HTTP\/1\.1 100 Continue/);
        const j = JSON.parse(r.stdout);
        assert.equal(j.method, "POST");
        assert.equal(j.headers.expect, undefined);
        assert.equal(j.headers["content-length"], "5000");
        // a body the gateway refuses anyway gets its answer instead of 100, and never reaches the origin
        const before = await stats(origin);
        const small = await run("curl", [
          "-sS",
          "-v",
          "-H",
          "Expect: 100-continue",
          "--data-binary",
          `@${file}`,
          `http://127.0.0.1:${g.ports.small}/sha256`,
        ]);
        assert.match(small.stderr, /< HTTP\/1\.1 413 /);
        assert.doesNotMatch(small.stderr, /100 Continue/);
        assert.equal((await stats(origin)).requests, before.requests);
      },
    );

    await t.step("HEAD keeps Content-Length without a body; 204 and 304 have no body", async () => {
      const c = await RawClient.connect(port);
      try {
        // all on one connection: a stray body byte would break the next response's parse
        await c.write("HEAD /head-info HTTP/1.1\r\nHost: h\r\n\r\n");
        const h = await c.readResponse(5000, "HEAD");
        assert.equal(h.status, 200);
        assert.equal(h.headers.get("content-length"), "12345");
        assert.equal(h.body.length, 0);
        for (const s of [204, 304]) {
          await c.write(`GET /status/${s} HTTP/1.1\r\nHost: h\r\n\r\n`);
          const r = await c.readResponse();
          assert.equal(r.status, s);
          assert.equal(r.headers.get("transfer-encoding"), undefined);
        }
        await c.write("GET /head-info HTTP/1.1\r\nHost: h\r\n\r\n");
        const g2 = await c.readResponse();
        assert.equal(g2.body.length, 12345);
        // nothing extra was sent after the last response
        await new Promise((r) => setTimeout(r, 100));
        assert.equal(c.buffered, 0);
      } finally {
        c.close();
      }
      const curlHead = await run("curl", ["-sS", "-I", `${base}/bytes/777`]);
      assert.match(curlHead.stdout, /content-length: 777/i);
    });

    await t.step(
      "keep-alive: 40 requests on one client connection reuse one upstream connection",
      async () => {
        // warm: make sure the pool has settled after the previous steps
        const before = await stats(origin);
        const connectsRe = /^expressgateway_upstream_connects_total\{.*pool="app"/;
        const connectsBefore = await metric(g, connectsRe);
        const c = await RawClient.connect(port);
        try {
          for (let i = 0; i < 40; i++) {
            await c.write(`GET /n/${i} HTTP/1.1\r\nHost: h\r\n\r\n`);
            const r = await c.readResponse();
            assert.equal(r.status, 200);
            assert.equal(text(r.body), `hello from h1-origin: GET /n/${i}\n`);
          }
          assert.ok(!c.closed);
        } finally {
          c.close();
        }
        const after = await stats(origin);
        assert.ok(
          after.connections - before.connections <= 1,
          `new upstream connections: ${after.connections - before.connections}`,
        );
        const open = await metric(g, /^expressgateway_upstream_connections\{.*pool="app".*state="open"/);
        assert.ok(open >= 1 && open <= 4, `open upstream connections: ${open}`);
        // Counted: every open connection was opened once, and the 40 requests opened at most one.
        // (Not equal to the origin's count: that includes the test's own /__stats fetches.)
        const connects = await metric(g, connectsRe);
        assert.ok(connects >= open, `connects_total ${connects} below the ${open} open connections`);
        assert.ok(
          connects - connectsBefore <= 1,
          `connects during the 40 requests: ${connects - connectsBefore}`,
        );
      },
    );

    await t.step("a backend closing an idle pooled connection does not fail the next POST", async () => {
      // The origin closes each connection 100 ms after answering; the gateway's pool must
      // notice while the connection is idle, not hand it to a POST (which is never retried).
      for (let i = 0; i < 3; i++) {
        const a = await run("curl", ["-sS", "--fail", `${base}/idle-close?ms=100`]);
        assert.equal(a.code, 0, a.stderr);
        await new Promise((r) => setTimeout(r, 400));
        const p = await run("curl", [
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-d",
          "x",
          `${base}/sha256`,
        ]);
        assert.equal(p.stdout, "200", `POST after an idle close, round ${i}`);
      }
    });

    await t.step(
      "a client that goes away mid-download: the upstream connection is closed, not pooled",
      async () => {
        const openRe = /^expressgateway_upstream_connections\{.*pool="app".*state="open"/;
        const before = await metric(g, openRe);
        const c = await RawClient.connect(port);
        await c.write(`GET /bytes/${200 * MB} HTTP/1.1\r\nHost: h\r\n\r\n`);
        const partial = await c.readToEnd(300); // some of it, then hang up
        assert.match(partial.text, /^HTTP\/1\.1 200 /);
        assert.ok(!partial.closed);
        c.close();
        let open = Infinity;
        for (let i = 0; i < 40 && open > before; i++) {
          await new Promise((r) => setTimeout(r, 100));
          open = await metric(g, openRe);
        }
        assert.ok(open <= before, `upstream connections open: ${open}, before: ${before}`);
        // and nothing half-read was handed to the next requests
        for (let i = 0; i < 5; i++) {
          const r = await rawOnce(port, `GET /after/${i} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`);
          assert.match(r.text, new RegExp(`^HTTP/1\\.1 200 [^]*hello from h1-origin: GET /after/${i}\n$`));
        }
      },
    );

    await t.step(
      "HTTP/1.0 clients: close-delimited body for an unknown length, keep-alive on request",
      async () => {
        const r = await rawOnce(port, "GET /bytes/5000?chunked=1 HTTP/1.0\r\nHost: h\r\n\r\n");
        assert.ok(r.closed);
        const head = r.text.slice(0, r.text.indexOf("\r\n\r\n"));
        assert.match(head, /^HTTP\/1\.1 200 /);
        assert.doesNotMatch(head, /transfer-encoding/i);
        assert.equal(r.text.length - head.length - 4, 5000);
        const c = await RawClient.connect(port);
        try {
          for (let i = 0; i < 3; i++) {
            await c.write("GET /bytes/10 HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n");
            const res = await c.readResponse();
            assert.equal(res.body.length, 10);
            assert.equal(res.headers.get("connection"), "keep-alive");
          }
        } finally {
          c.close();
        }
      },
    );

    await t.step("forwarding headers added, hop-by-hop and Connection-named headers removed", async () => {
      const r = await rawOnce(
        port,
        "GET /headers HTTP/1.1\r\nHost: h\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\n" +
          "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: gzip\r\nUpgrade: foo/1\r\n" +
          "X-Forwarded-For: 10.9.8.7\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nVia: 1.0 front\r\n" +
          "X-Keep: yes\r\n\r\n",
      );
      assert.match(r.text, /^HTTP\/1\.1 200 /);
      const [head, body] = [
        r.text.slice(0, r.text.indexOf("\r\n\r\n")),
        r.text.slice(r.text.indexOf("\r\n\r\n") + 4),
      ];
      const j = JSON.parse(body);
      const h = j.headers;
      assert.equal(h["x-forwarded-for"], "10.9.8.7, 127.0.0.1");
      assert.equal(h["x-forwarded-proto"], "http");
      assert.equal(h["x-forwarded-host"], "h");
      assert.equal(h.via, "1.0 front, 1.1 expressgateway");
      assert.equal(h.host, "h");
      assert.equal(h["x-keep"], "yes");
      for (const gone of ["x-secret-hop", "keep-alive", "proxy-connection", "te", "upgrade"]) {
        assert.equal(h[gone], undefined, gone);
      }
      // the origin's own hop-by-hop fields (node sends Keep-Alive) don't reach the client
      assert.doesNotMatch(head, /\r\nkeep-alive:/i);
      assert.match(head, /\r\nvia: 1\.1 expressgateway/i);
    });

    await t.step(
      "a backend killed mid-response gives a truncated response and a closed connection",
      async () => {
        const c = await RawClient.connect(port);
        try {
          await c.write("GET /kill-after/100000 HTTP/1.1\r\nHost: h\r\n\r\n");
          const t0 = performance.now();
          const r = await c.readResponse(8000);
          assert.equal(r.status, 200);
          assert.equal(r.headers.get("content-length"), "200000");
          assert.ok(r.body.length < 200000, `got ${r.body.length}`);
          assert.ok(await c.waitClosed(8000), "connection not closed");
          assert.ok(performance.now() - t0 < 8000);
        } finally {
          c.close();
        }
        // curl, too, sees an incomplete transfer (exit code 18), not a success
        const cr = await run("curl", ["-sS", "-o", "/dev/null", `${base}/kill-after/100000`], {
          timeoutMs: 15_000,
        });
        assert.notEqual(cr.code, 0);
      },
    );

    await t.step("a backend that never answers → 504 after response_timeout, counted", async () => {
      const before = await metric(g, /^expressgateway_upstream_errors_total\{.*pool="short".*kind="timeout"/);
      const t0 = performance.now();
      const r = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", `${base}/hang`], {
        timeoutMs: 15_000,
      });
      assert.equal(r.stdout, "504");
      assert.ok(performance.now() - t0 < 10_000);
      const after = await metric(g, /^expressgateway_upstream_errors_total\{.*pool="short".*kind="timeout"/);
      assert.equal(after - before, 1);
    });

    await t.step(
      "a backend answering before the upload ended: the answer is relayed, nothing hangs",
      async () => {
        const file = `${dir}/early`;
        await Deno.writeFile(file, noise(20 * MB, 5));
        for (const extra of [[], ["-H", "Transfer-Encoding: chunked"]]) {
          const r = await run("curl", [
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Expect:",
            ...extra,
            "--data-binary",
            `@${file}`,
            `${base}/status/403`,
          ], { timeoutMs: 20_000 });
          assert.equal(r.stdout, "403", r.stderr);
        }
        const after = await rawOnce(port, "GET /status/200 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        assert.match(after.text, /^HTTP\/1\.1 200 /);
      },
    );

    await t.step("no route → 404 from the gateway", async () => {
      const r = await rawOnce(port, "GET /x HTTP/1.1\r\nHost: unknown.test\r\nConnection: close\r\n\r\n");
      assert.match(r.text, /^HTTP\/1\.1 404 /);
    });

    await t.step("max_body_size via Content-Length → 413 before forwarding", async () => {
      const before = await stats(origin);
      const c = await RawClient.connect(g.ports.small);
      try {
        await c.write(`POST /sha256 HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n${"x".repeat(5000)}`);
        const r = await c.readResponse();
        assert.equal(r.status, 413);
        assert.ok(await c.waitClosed(3000));
      } finally {
        c.close();
      }
      // a much larger body the client keeps sending: the 413 still arrives (no reset first)
      const file = `${dir}/big413`;
      await Deno.writeFile(file, noise(8 * MB, 3));
      const big = await run("curl", [
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Expect:",
        "--data-binary",
        `@${file}`,
        `http://127.0.0.1:${g.ports.small}/sha256`,
      ]);
      assert.equal(big.stdout, "413", big.stderr);
      assert.equal((await stats(origin)).requests, before.requests);
    });

    await t.step(
      "max_body_size via chunked → the stream is cut, the origin never gets a whole body",
      async () => {
        const before = await stats(origin);
        const c = await RawClient.connect(g.ports.small);
        try {
          await c.write("POST /sha256 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
          for (let i = 0; i < 3; i++) await c.write(`200\r\n${"y".repeat(512)}\r\n`);
          await c.write("0\r\n\r\n").catch(() => {});
          const res = await c.readToEnd(5000);
          assert.ok(res.closed, "connection not closed");
          if (res.text) assert.match(res.text, /^HTTP\/1\.1 413 /);
        } finally {
          c.close();
        }
        const after = await stats(origin);
        assert.equal(after.completed, before.completed, "origin received a complete body");
      },
    );

    await t.step("idempotent requests are retried on another backend; POST is not", async () => {
      const retriesBefore = await metric(g, /^expressgateway_upstream_retries_total\{pool="mixed"/);
      for (let i = 0; i < 6; i++) {
        const r = await run("curl", [
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `${base}/retry/get${i}`,
        ]);
        assert.equal(r.stdout, "200", `GET ${i}`);
      }
      const retriesAfter = await metric(g, /^expressgateway_upstream_retries_total\{pool="mixed"/);
      assert.ok(retriesAfter - retriesBefore >= 2, `retries: ${retriesAfter - retriesBefore}`);
      const before = await stats(origin);
      const codes: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await run("curl", [
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          "-d",
          "x=1",
          `${base}/retry/post${i}`,
        ]);
        codes.push(r.stdout);
      }
      const ok = codes.filter((c) => c === "200").length;
      assert.ok(codes.includes("502"), `POST codes: ${codes}`);
      assert.equal(ok + codes.filter((c) => c === "502").length, codes.length, `POST codes: ${codes}`);
      assert.equal((await stats(origin)).requests - before.requests, ok);
      const connectErrors = await metric(
        g,
        /^expressgateway_upstream_errors_total\{.*pool="mixed".*kind="connect"/,
      );
      assert.ok(connectErrors >= 3);
    });
  } finally {
    if (gw) assert.equal(await gw.stop(), 0);
    await origin.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
