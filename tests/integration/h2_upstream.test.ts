/**
 * HTTP/2 backends (protocol "h2c" = prior knowledge, "h2" = TLS + ALPN with CA verification),
 * reached from an HTTP/2 front (H2→H2) and an HTTP/1.1 front (H1→H2), against node's http2
 * server: 0 B, 10 MB and 200 MB bodies by sha256, trailers carried both ways, the peer's
 * MAX_CONCURRENT_STREAMS honoured by opening more connections, GOAWAY handled by moving to a
 * new connection, and a dead backend answered with 502.
 */

import assert from "node:assert/strict";
import { metricSum } from "../helpers/common.ts";
import { startGateway } from "../helpers/gateway.ts";
import { rawExchange, run } from "../helpers/run.ts";
import { h2client, makeCerts, startH2Origin } from "./h2_helpers.ts";
import { errorCodeOf, RawH2, u32 } from "../helpers/h2_raw.ts";
import { encodeFrame, ErrorCode, FrameType } from "../../src/http/h2/frames.ts";

const MB = 1_000_000;

function listener(name: string, pool: string): string {
  return `
[[listeners]]
name = "${name}"
bind = "127.0.0.1:0"
protocol = "http"
max_body_size = "256MiB"
  [[listeners.routes]]
  pool = "${pool}"
`;
}

Deno.test("HTTP/2 backends (h2c, h2 over TLS) from h2 and HTTP/1.1 fronts", async (t) => {
  const certs = await makeCerts();
  const plain = await startH2Origin("h2c-origin", "h2c");
  const tls = await startH2Origin("h2-origin", "h2", certs);
  const narrow = await startH2Origin("narrow", "h2c", undefined, 2);
  const refuser = await startH2Origin("refuser", "h2c");
  const gw = await startGateway(`
[runtime]
workers = 1
[observability]
admin_bind = "127.0.0.1:0"
access_log = false
${listener("c", "h2c")}
${listener("s", "h2")}
${listener("n", "narrow")}
${listener("dead", "dead")}
${listener("retry", "retry")}
${listener("slow", "slow")}
[[pools]]
name = "h2c"
  [[pools.backends]]
  address = "${plain.address}"
  protocol = "h2c"
[[pools]]
name = "h2"
  [[pools.backends]]
  address = "${tls.address}"
  protocol = "h2"
  tls = { ca = "${certs.ca}", server_name = "localhost" }
[[pools]]
name = "narrow"
max_connections_per_backend = 8
  [[pools.backends]]
  address = "${narrow.address}"
  protocol = "h2c"
[[pools]]
name = "dead"
connect_timeout = "1s"
  [[pools.backends]]
  address = "127.0.0.1:1"
  protocol = "h2c"
[[pools]]
name = "retry"
  [[pools.backends]]
  address = "${refuser.address}"
  protocol = "h2c"
  [[pools.backends]]
  address = "${plain.address}"
  protocol = "h2c"
[[pools]]
name = "slow"
response_timeout = "500ms"
  [[pools.backends]]
  address = "${plain.address}"
  protocol = "h2c"
`);
  const url = (l: string, path: string) => `http://127.0.0.1:${gw.ports[l]}${path}`;
  try {
    for (const [cell, l] of [["h2c", "c"], ["h2 (TLS)", "s"]]) {
      await t.step(`H2→H2 ${cell}: 0 B, 10 MB, 200 MB both ways, trailers both ways`, async () => {
        for (const n of [0, 10 * MB, 200 * MB]) {
          const r = await h2client({ op: "request", url: url(l, `/bytes/${n}?trailers=1`) });
          assert.equal(r.status, 200, JSON.stringify(r));
          assert.equal(r.bytes, n);
          assert.equal(r.sha256, r.expectSha256, `GET ${n}: body differs`);
          // The origin's trailer (sha256 of what it sent) reaches the H2 client.
          assert.equal(r.trailers["x-checksum"], r.expectSha256);
        }
        for (const n of [0, 10 * MB, 200 * MB]) {
          const r = await h2client({
            op: "request",
            url: url(l, "/sha256"),
            method: "POST",
            bytes: n,
            trailers: { "x-request-checksum": `n${n}` },
          });
          assert.equal(r.status, 200, JSON.stringify(r));
          const j = JSON.parse(r.text);
          assert.equal(j.bytes, n);
          assert.equal(j.sha256, r.sentSha256, `POST ${n}: body differs`);
          assert.equal(j.trailers["x-request-checksum"], `n${n}`);
          assert.equal(j.headers[":scheme"], l === "s" ? "https" : "http");
          assert.match(j.headers.via, /^2 expressgateway/);
        }
      });

      await t.step(`H1→H2 ${cell}: 0 B, 10 MB, 200 MB both ways, trailers both ways`, async () => {
        for (const n of [0, 10 * MB, 200 * MB]) {
          const r = await run("bash", ["-c", `curl -sS --http1.1 '${url(l, `/bytes/${n}`)}' | sha256sum`]);
          const expect = await h2client({ op: "request", url: url(l, `/bytes/${n}`) });
          assert.equal(r.stdout.split(" ")[0], expect.expectSha256, `GET ${n} over HTTP/1.1`);
        }
        const file = await Deno.makeTempFile();
        try {
          for (const n of [0, 10 * MB, 200 * MB]) {
            await run("bash", ["-c", `head -c ${n} /dev/urandom > ${file}`]);
            const want = (await run("sha256sum", [file])).stdout.split(" ")[0];
            const r = await run("curl", ["-sS", "--http1.1", "--data-binary", `@${file}`, url(l, "/sha256")]);
            const j = JSON.parse(r.stdout);
            assert.equal(j.bytes, n);
            assert.equal(j.sha256, want, `POST ${n} over HTTP/1.1`);
            assert.equal(j.headers["content-length"], String(n));
          }
        } finally {
          await Deno.remove(file);
        }
        // Chunked request with trailers (HTTP/1.1) → DATA + trailing HEADERS (HTTP/2).
        const port = gw.ports[l];
        const out = await rawExchange(
          port,
          `POST /sha256 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n` +
            `5\r\nhello\r\n0\r\nx-req-trailer: yes\r\n\r\n`,
        );
        const body = JSON.parse(out.slice(out.indexOf("{"), out.lastIndexOf("}") + 1));
        assert.equal(body.bytes, 5);
        assert.equal(body.trailers["x-req-trailer"], "yes");
        // HTTP/2 response trailers → chunked trailers for an HTTP/1.1 client that sent TE: trailers.
        const res = await rawExchange(
          port,
          `GET /trailers HTTP/1.1\r\nhost: x\r\nte: trailers\r\nconnection: close\r\n\r\n`,
        );
        assert.match(res, /^HTTP\/1\.1 200/);
        assert.match(res, /transfer-encoding: chunked/i);
        assert.match(res, /\r\n0\r\nx-checksum: abc123\r\n\r\n$/);
      });
    }

    await t.step(
      "MAX_CONCURRENT_STREAMS 2 at the backend: more connections, every request served",
      async () => {
        const r = await h2client({ op: "concurrent", url: url("n", "/slow?ms=300"), n: 10 });
        assert.deepEqual(r.statuses, new Array(10).fill(200));
        const stats = await h2client({ op: "request", url: `http://127.0.0.1:${narrow.port}/__requests` });
        const s = JSON.parse(stats.text);
        // 10 concurrent streams at 2 per connection need more than one connection (bounded by 8 + ours).
        assert.ok(s.sessions >= 3 && s.sessions <= 9, `sessions: ${s.sessions}`);
        // The gateway counted the connections it opened as the backend saw them (less the one above).
        const connects = await metricSum(
          gw.adminPort,
          /^expressgateway_upstream_connects_total\{pool="narrow"/,
        );
        assert.equal(connects, s.sessions - 1);
      },
    );

    await t.step("an h2 backend resetting mid-body: the H2 client's stream is reset, not ended", async () => {
      // A raw client: node's http2 client reports a RST_STREAM after DATA as a normal end.
      const c = await RawH2.connect(gw.ports.c);
      try {
        await c.send(c.headers(1, [
          [":method", "GET"],
          [":scheme", "http"],
          [":path", "/reset-midway"],
          [":authority", "localhost"],
        ]));
        let data = 0;
        for (;;) {
          const f = await c.next(5000);
          assert.ok(f && f !== "closed", "no RST_STREAM: the client would wait for the rest");
          if (f.header.streamId !== 1) continue;
          assert.equal(f.header.flags & 0x1, 0, "END_STREAM: a truncated body passed off as complete");
          if (f.header.type === FrameType.DATA) data += f.payload.length;
          if (f.header.type === FrameType.RST_STREAM) {
            assert.equal(errorCodeOf(f), ErrorCode.INTERNAL_ERROR);
            break;
          }
        }
        assert.equal(data, 1000, "the part the backend sent arrives first");
      } finally {
        c.close();
      }
    });

    await t.step("an H2 client resetting its request body: the backend's stream is reset too", async () => {
      const aborted = async () =>
        JSON.parse((await h2client({ op: "request", url: `http://127.0.0.1:${plain.port}/__requests` })).text)
          .aborted;
      const before = await aborted();
      const c = await RawH2.connect(gw.ports.c);
      try {
        await c.send(c.headers(1, [
          [":method", "POST"],
          [":scheme", "http"],
          [":path", "/sha256"],
          [":authority", "localhost"],
        ], 0x4));
        await c.send(encodeFrame(FrameType.DATA, 0, 1, new Uint8Array(1000)));
        await new Promise((r) => setTimeout(r, 200)); // the request reaches the backend
        await c.send(encodeFrame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)));
        let now = before;
        for (let i = 0; i < 30 && now === before; i++) {
          await new Promise((r) => setTimeout(r, 100));
          now = await aborted();
        }
        assert.equal(now, before + 1, "the backend still waits for the rest of a request that was cancelled");
      } finally {
        c.close();
      }
    });

    await t.step("GOAWAY from the backend: later requests go to a new connection", async () => {
      const first = await h2client({ op: "request", url: url("c", "/goaway") });
      assert.equal(first.status, 200);
      await new Promise((r) => setTimeout(r, 100));
      for (let i = 0; i < 3; i++) {
        const r = await h2client({ op: "request", url: url("c", `/after-goaway-${i}`) });
        assert.equal(r.status, 200, JSON.stringify(r));
        assert.match(r.text, /hello from h2c-origin/);
      }
    });

    await t.step(
      "a stream above the backend's GOAWAY lastStreamId is retried on a new connection",
      async () => {
        const r = await h2client({ op: "request", url: url("c", "/goaway-once") });
        assert.equal(r.status, 200, JSON.stringify(r));
        assert.match(r.text, /processed after a GOAWAY retry/);
      },
    );

    await t.step("REFUSED_STREAM is retried on another backend; a slow one is a 504", async () => {
      for (let i = 0; i < 6; i++) {
        const r = await h2client({ op: "request", url: url("retry", `/r${i}`) });
        assert.equal(r.status, 200, JSON.stringify(r));
        assert.match(r.text, /hello from h2c-origin/);
      }
      // Round robin sent about half of them to the refuser first: each was retried, none failed.
      const metrics = await (await fetch(gw.admin("/metrics"))).text();
      const m = /expressgateway_upstream_retries_total\{pool="retry"\} (\d+)/.exec(metrics);
      assert.ok(m && Number(m[1]) >= 2, `retries: ${m?.[1]}`);
      const r = await h2client({ op: "request", url: url("slow", "/slow?ms=3000") });
      assert.equal(r.status, 504);
    });

    await t.step("backend statuses and HEAD pass through; a dead backend is a 502", async () => {
      let r = await h2client({ op: "request", url: url("c", "/status/204") });
      assert.equal(r.status, 204);
      r = await h2client({ op: "request", url: url("c", "/status/503") });
      assert.equal(r.status, 503);
      r = await h2client({ op: "request", method: "HEAD", url: url("c", "/bytes/5000") });
      assert.equal(r.status, 200);
      assert.equal(r.bytes, 0);
      assert.equal(r.headers["content-length"], "5000");
      r = await h2client({ op: "request", url: url("dead", "/") });
      assert.equal(r.status, 502);
    });
  } finally {
    assert.equal(await gw.stop(), 0);
    await plain.stop();
    await tls.stop();
    await narrow.stop();
    await refuser.stop();
    await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
  }
});
