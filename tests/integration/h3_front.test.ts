/**
 * The HTTP/3 front end end to end: the real gateway (two data-plane workers; the quic listener
 * lives in worker 0) with a `protocol = "quic"` listener in front of the node HTTP/1.1 origin
 * (H3→H1), driven by Debian's ngtcp2 client `gtlsclient` (a real, independent HTTP/3 stack:
 * nghttp3, which also uses our QPACK dynamic table) and by tests/helpers/h3_client.ts for what
 * gtlsclient cannot do (trailers, malformed frames, close codes).
 *
 * Checked: bytes intact (small, 10 MB sha256, 3 MB upload sha256), several concurrent streams on
 * one connection, trailers both ways, H3→H2 (node http2 h2c origin, trailers), 0-RTT per
 * RFC 8470 (Early-Data: 1 or 425), header timeout, Alt-Svc on the https listener naming the quic port,
 * malformed input answered with the RFC 9114 connection error code while the gateway keeps
 * serving (an answer before the upload is done: tests/integration/early_answer.test.ts), 431
 * for oversized headers, upstream truncation detectable, GOAWAY drain finishing an
 * in-flight request.
 */

import assert from "node:assert/strict";
import { configHead, startGateway } from "../helpers/gateway.ts";
import { H3Client, header, makeTestPki } from "../helpers/h3_client.ts";
import { startOrigin } from "../helpers/origin.ts";
import { startNodePeer } from "../helpers/node_peer.ts";
import { run } from "../helpers/run.ts";
import { QuicClientEndpoint } from "../../src/quic/engine.ts";
import { H3 } from "../../src/http/h3/frames.ts";
import { encodeFrame, encodeSettings, FrameType, Setting } from "../../src/http/h3/frames.ts";
import { metricSum as metric, sha256 } from "../helpers/common.ts";

/** gtlsclient (ngtcp2 + nghttp3): quiet, exits when its streams are done. */
async function gtls(port: number, args: string[], uris: string[], timeoutMs = 30_000) {
  return await run("gtlsclient", [
    "-q",
    "--exit-on-all-streams-close",
    "--timeout=10s",
    ...args,
    "127.0.0.1",
    String(port),
    ...uris,
  ], { timeoutMs });
}

Deno.test("h3 front: gtlsclient and an h3 test client through a quic listener to an HTTP/1.1 origin", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-h3-" });
  const pki = await makeTestPki(dir);
  const origin = await startOrigin("o1");
  const h2origin = await startNodePeer("h2_origin.mjs", ["h2o", "h2c"]);
  const gw = await startGateway(`${configHead({ workers: 2 })}
[[listeners]]
name = "h3"
bind = "127.0.0.1:0"
protocol = "quic"
max_header_size = "4KiB"
header_timeout = "1s"
tls = { cert = "${pki.cert}", key = "${pki.key}" }
  [[listeners.routes]]
  host = "h2.test"
  pool = "h2app"
  [[listeners.routes]]
  path_prefix = "/headers"
  early_data = true
  pool = "app"
  [[listeners.routes]]
  pool = "app"

[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "https"
alt_svc_h3 = "h3"
tls = { cert = "${pki.cert}", key = "${pki.key}" }
  [[listeners.routes]]
  pool = "app"

[[pools]]
name = "app"
  [[pools.backends]]
  address = "${origin.address}"

[[pools]]
name = "h2app"
  [[pools.backends]]
  address = "127.0.0.1:${h2origin.port}"
  protocol = "h2c"
`);
  const port = gw.ports.h3;
  const dl = `${dir}/dl`;
  await Deno.mkdir(dl);
  try {
    await t.step("GET: status and body bytes as the origin sends them", async () => {
      const r = await gtls(port, ["--download", dl], ["https://localhost/bytes/100000"]);
      assert.equal(r.code, 0, r.stderr);
      const got = await Deno.readFile(`${dl}/100000`);
      const want = new Uint8Array(await (await fetch(`http://${origin.address}/bytes/100000`)).arrayBuffer());
      assert.equal(got.length, 100000);
      assert.deepEqual(got, want);
    });

    await t.step("10 MB download: sha256 equal to the origin's", async () => {
      const r = await gtls(port, ["--download", dl], ["https://localhost/bytes/10485760"]);
      assert.equal(r.code, 0, r.stderr);
      const got = await Deno.readFile(`${dl}/10485760`);
      const want = new Uint8Array(
        await (await fetch(`http://${origin.address}/bytes/10485760`)).arrayBuffer(),
      );
      assert.equal(got.length, 10485760);
      assert.equal(await sha256(got), await sha256(want));
    });

    await t.step("3 MB POST upload (gtlsclient -d): the origin saw every byte", async () => {
      const body = crypto.getRandomValues(new Uint8Array(65536));
      const up = new Uint8Array(3 * 1024 * 1024);
      for (let i = 0; i < up.length; i += body.length) up.set(body, i);
      await Deno.writeFile(`${dir}/up.bin`, up);
      const r = await gtls(port, ["-m", "POST", "-d", `${dir}/up.bin`, "--download", dl], [
        "https://localhost/sha256",
      ]);
      assert.equal(r.code, 0, r.stderr);
      const seen = JSON.parse(await Deno.readTextFile(`${dl}/sha256`));
      assert.equal(seen.bytes, up.length);
      assert.equal(seen.sha256, await sha256(up));
      assert.equal(seen.headers["content-length"], String(up.length));
      assert.equal(seen.headers["x-forwarded-proto"], "https");
    });

    await t.step("six concurrent streams on one QUIC connection", async () => {
      const before = await metric(gw.adminPort, /^expressgateway_connections_total\{listener="h3"\}/);
      const sizes = [1000, 2000, 3000, 50000, 200000, 1000000];
      const r = await gtls(port, ["--download", dl], sizes.map((n) => `https://localhost/bytes/${n}`));
      assert.equal(r.code, 0, r.stderr);
      for (const n of sizes) {
        const got = await Deno.readFile(`${dl}/${n}`);
        const want = new Uint8Array(await (await fetch(`http://${origin.address}/bytes/${n}`)).arrayBuffer());
        assert.deepEqual(got, want, `/bytes/${n}`);
      }
      const after = await metric(gw.adminPort, /^expressgateway_connections_total\{listener="h3"\}/);
      assert.equal(after - before, 1, "all six requests rode one connection");
    });

    await t.step("Alt-Svc on the https listener names the quic listener's port", async () => {
      const r = await run("curl", [
        "-sk",
        "-o",
        "/dev/null",
        "-D",
        "-",
        `https://127.0.0.1:${gw.ports.web}/bytes/1`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^alt-svc: h3=":${port}"; ma=86400\\r?$`, "mi"));
      // The quic listener itself does not advertise itself.
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        const res = await c.request({ path: "/bytes/1" });
        assert.equal(header(res, "alt-svc"), undefined);
      } finally {
        c.close();
      }
    });

    await t.step("trailers both ways, content-length, the server's SETTINGS", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        const up = await c.request({
          method: "POST",
          path: "/sha256",
          headers: [["te", "trailers"]],
          body: new TextEncoder().encode("hello h3"),
          trailers: [["x-check", "yes"]],
        });
        assert.equal(up.status, 200);
        const seen = JSON.parse(new TextDecoder().decode(up.body));
        assert.equal(seen.bytes, 8);
        assert.deepEqual(seen.trailers, { "x-check": "yes" });
        const down = await c.request({ path: "/trailers" });
        assert.equal(down.status, 200);
        assert.equal(new TextDecoder().decode(down.body), "part one;part two");
        assert.deepEqual(down.trailers, [["x-checksum", "abc123"]]);
        const small = await c.request({ path: "/bytes/5" });
        assert.equal(header(small, "content-length"), "5");
        assert.equal(small.bodyLength, 5);
        assert.equal(c.settings?.get(Setting.MAX_FIELD_SECTION_SIZE), 4096);
        assert.equal(c.settings?.get(Setting.QPACK_MAX_TABLE_CAPACITY), 4096);
        assert.equal(c.settings?.get(Setting.QPACK_BLOCKED_STREAMS), 16);
      } finally {
        c.close();
      }
    });

    await t.step("H3→H2: an h2c backend (node http2), body and trailers", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        const r = await c.request({ authority: "h2.test", path: "/bytes/1000000?trailers=1" });
        assert.equal(r.status, 200);
        assert.equal(r.bodyLength, 1_000_000);
        const sum = await sha256(r.body);
        assert.deepEqual(r.trailers, [["x-checksum", sum]]);
        const up = await c.request({
          authority: "h2.test",
          method: "POST",
          path: "/sha256",
          body: new Uint8Array(300_000).fill(7),
          trailers: [["x-up", "1"]],
        });
        const seen = JSON.parse(new TextDecoder().decode(up.body));
        assert.equal(seen.bytes, 300_000);
        assert.equal(seen.sha256, await sha256(new Uint8Array(300_000).fill(7)));
        assert.equal(seen.trailers["x-up"], "1");
      } finally {
        c.close();
      }
    });

    await t.step("upstream truncation stays detectable: content-length kept, fewer bytes", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        const r = await c.request({ path: "/kill-after/4096" });
        assert.equal(r.status, 200);
        assert.equal(header(r, "content-length"), "8192");
        assert.ok(r.bodyLength < 8192, `got ${r.bodyLength} of 8192`);
      } finally {
        c.close();
      }
    });

    await t.step("header section above max_header_size → 431, connection lives on", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        const big = await c.request({ path: "/bytes/1", headers: [["x-big", "a".repeat(5000)]] });
        assert.equal(big.status, 431);
        const ok = await c.request({ path: "/bytes/3" });
        assert.equal(ok.status, 200);
        assert.equal(ok.bodyLength, 3);
      } finally {
        c.close();
      }
    });

    await t.step("no HEADERS within header_timeout → 408 on that stream", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      try {
        const s = await c.openStream();
        await s.send.write(Uint8Array.of(0x01)); // a HEADERS frame type, then nothing
        const res = await c.readResponse(s);
        assert.equal(res.status, 408);
        const ok = await c.request({ path: "/bytes/2" });
        assert.equal(ok.status, 200);
      } finally {
        c.close();
      }
    });

    await t.step(
      "0-RTT (RFC 8470): safe + early_data route forwarded with Early-Data: 1, else 425",
      async () => {
        const ep = new QuicClientEndpoint("127.0.0.1");
        // One resumed (0-RTT) connection per request, so each request surely travels as early data.
        // Resumption needs a session ticket from an earlier connection on this endpoint; one that
        // closed before its tickets arrived leaves none, so a non-resumed attempt only primes the
        // next one (bounded).
        const early = async (init: { method?: string; path: string }) => {
          for (let attempt = 0; attempt < 10; attempt++) {
            const c = await H3Client.connect({
              port,
              ca: pki.caPem,
              endpoint: ep,
              zeroRtt: true,
              noControl: true,
            });
            try {
              if (!c.early) {
                await c.request({ path: "/bytes/1" });
                continue;
              }
              return await c.request(init);
            } finally {
              await new Promise((r) => setTimeout(r, 50)); // let this connection's tickets arrive
              c.close();
            }
          }
          throw new Error("no 0-RTT resumption in 10 attempts");
        };
        try {
          const first = await H3Client.connect({ port, ca: pki.caPem, endpoint: ep, zeroRtt: true });
          assert.equal(first.early, false);
          const full = await first.request({ path: "/headers" }); // also: the session ticket arrives
          assert.equal(full.status, 200);
          assert.equal(JSON.parse(new TextDecoder().decode(full.body)).headers["early-data"], undefined);
          first.close();
          const events = () =>
            metric(gw.adminPort, /^expressgateway_protocol_events_total\{.*event="h3_early_data"/);
          const before = await events();

          const ok = await early({ path: "/headers" }); // route with early_data = true, GET
          assert.equal(ok.status, 200);
          assert.equal(JSON.parse(new TextDecoder().decode(ok.body)).headers["early-data"], "1");

          const unsafe = await early({ method: "POST", path: "/headers" }); // early_data route, POST
          assert.equal(unsafe.status, 425);

          const other = await early({ path: "/bytes/9" }); // route without early_data
          assert.equal(other.status, 425);
          assert.equal(await events() - before, 3, "three requests arrived as early data");
        } finally {
          ep.close();
        }
      },
    );

    const malformed: Array<{ name: string; code: number; act: (c: H3Client) => Promise<void> }> = [
      {
        name: "request without :path",
        code: H3.MESSAGE_ERROR,
        act: async (c) => {
          const s = await c.openStream();
          await s.send.write(H3Client.headersFrame([[":method", "GET"], [":scheme", "https"], [
            ":authority",
            "localhost",
          ]]));
          await s.send.finish();
        },
      },
      {
        name: "upper-case field name",
        code: H3.MESSAGE_ERROR,
        act: async (c) => {
          const s = await c.openStream();
          await s.send.write(H3Client.headersFrame([
            [":method", "GET"],
            [":scheme", "https"],
            [":authority", "localhost"],
            [":path", "/"],
            ["X-Upper", "1"],
          ]));
          await s.send.finish();
        },
      },
      {
        name: "DATA before HEADERS",
        code: H3.FRAME_UNEXPECTED,
        act: async (c) => {
          const s = await c.openStream();
          await s.send.write(H3Client.dataFrame(new Uint8Array(4)));
        },
      },
      {
        name: "body longer than content-length",
        code: H3.MESSAGE_ERROR,
        act: async (c) => {
          const s = await c.openStream();
          await s.send.write(H3Client.headersFrame([
            [":method", "POST"],
            [":scheme", "https"],
            [":authority", "localhost"],
            [":path", "/sha256"],
            ["content-length", "3"],
          ]));
          await s.send.write(H3Client.dataFrame(new Uint8Array(10)));
          await s.send.finish();
        },
      },
      {
        name: "second SETTINGS on the control stream",
        code: H3.FRAME_UNEXPECTED,
        act: async (c) => {
          await c.control!.write(encodeSettings([]));
        },
      },
      {
        name: "HTTP/2 frame type 0x06 (PING) on the control stream",
        code: H3.FRAME_UNEXPECTED,
        act: async (c) => {
          await c.control!.write(encodeFrame(0x06, new Uint8Array(8)));
        },
      },
      {
        name: "DATA on the control stream",
        code: H3.FRAME_UNEXPECTED,
        act: async (c) => {
          await c.control!.write(encodeFrame(FrameType.DATA, new Uint8Array(1)));
        },
      },
      {
        name: "control stream closed",
        code: H3.CLOSED_CRITICAL_STREAM,
        act: async (c) => {
          await c.control!.finish();
        },
      },
    ];
    await t.step(
      "a body that ends short of its content-length: 400 on its stream, the connection serves on",
      async () => {
        const c = await H3Client.connect({ port, ca: pki.caPem });
        try {
          for (const sent of [0, 3]) {
            const r = await c.request({
              method: "POST",
              path: "/sha256",
              headers: [["content-length", "10"]],
              body: new Uint8Array(sent),
            });
            assert.equal(r.status, 400, `content-length 10, ${sent} bytes sent`);
          }
          const ok = await c.request({ path: "/bytes/7" });
          assert.equal(ok.status, 200);
          assert.equal(ok.bodyLength, 7);
          assert.equal(c.conn.isClosed, false);
        } finally {
          c.close();
        }
      },
    );

    for (const m of malformed) {
      await t.step(`malformed: ${m.name} → ${`0x${m.code.toString(16)}`} connection close`, async () => {
        const c = await H3Client.connect({ port, ca: pki.caPem });
        try {
          // Unknown (GREASE) frames first: they must be ignored, not fatal.
          await c.control!.write(encodeFrame(0x21, new Uint8Array(3)));
          await m.act(c);
          const closed = await Promise.race([
            c.closed(),
            new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no connection close")), 10_000)),
          ]);
          assert.equal(closed.local, false);
          assert.equal(closed.code, m.code, closed.reason);
        } finally {
          c.close();
        }
      });
    }

    await t.step("first control frame not SETTINGS → H3_MISSING_SETTINGS; gateway still serves", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem, noControl: true });
      const s = await c.conn.openUni();
      await s.write(Uint8Array.of(0x00, ...encodeFrame(FrameType.GOAWAY, Uint8Array.of(0))));
      const closed = await c.closed();
      assert.equal(closed.code, H3.MISSING_SETTINGS);
      const c2 = await H3Client.connect({ port, ca: pki.caPem });
      try {
        const r = await c2.request({ path: "/bytes/7" });
        assert.equal(r.status, 200);
        assert.equal(r.bodyLength, 7);
      } finally {
        c2.close();
      }
      assert.ok(
        await metric(gw.adminPort, /^expressgateway_protocol_events_total\{listener="h3",event="h3_/) >= 8,
      );
    });

    await t.step("SIGTERM: GOAWAY, the in-flight request completes, then the gateway exits 0", async () => {
      const c = await H3Client.connect({ port, ca: pki.caPem });
      const slow = c.request({ path: "/slow?ms=1500" });
      await new Promise((r) => setTimeout(r, 400));
      const code = gw.stop();
      const res = await slow;
      assert.equal(c.goaway, 4, "GOAWAY names the stream after the one in flight (0)");
      assert.equal(res.status, 200);
      assert.equal(new TextDecoder().decode(res.body), "slow o1\n");
      assert.equal(await code, 0);
      c.close();
    });
  } finally {
    await gw.stop();
    await origin.stop();
    await h2origin.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
