/**
 * An answer before the upload is done (RFC 9112 §9.3, RFC 9113 §8.1, RFC 9114 §4.1.1): a client
 * announces a 100,000-byte body, sends 1,000 bytes and no more; the backend answers 401 at once.
 * On every front (HTTP/1.1, h2c, HTTP/3) and to both kinds of backend (HTTP/1.1, h2c) the client
 * must get that 401. An HTTP/1.1 connection then closes (the rest of the body would be read as the
 * next request); an HTTP/2 or HTTP/3 connection carries the next request. The HTTP/3 case once
 * closed the whole connection with H3_MESSAGE_ERROR (a read our own STOP_SENDING cut short was
 * taken for the client's FIN; docs/QUIC.md).
 */

import assert from "node:assert/strict";
import { configHead, hostRoutes, poolConfig, startGateway, webAndQuicListeners } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { H3Client, makeTestPki } from "../helpers/h3_client.ts";
import { startH2Origin } from "./h2_helpers.ts";
import { run } from "../helpers/run.ts";
import { metricSum } from "../helpers/common.ts";
import { assertSettled } from "../helpers/settled.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

Deno.test("an answer before the upload is done reaches the client on every front, to h1 and h2c backends", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "eg-early-" });
  const pki = await makeTestPki(dir);
  const h1 = await startOrigin("o1");
  const h2 = await startH2Origin("o2", "h2c");
  const gw = await startGateway(`${configHead()}
${webAndQuicListeners(pki, hostRoutes({ h1: "h1", h2: "h2" }))}
${poolConfig("h1", [h1.address])}
${poolConfig("h2", [h2.address], "", `protocol = "h2c"`)}`);
  try {
    for (const host of ["h1", "h2"]) {
      await t.step(`HTTP/1.1 → ${host}: the 401, then the connection closes`, async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: gw.ports.web });
        try {
          await conn.write(new TextEncoder().encode(
            `POST /status/401 HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 100000\r\n\r\n${"x".repeat(1000)}`,
          ));
          let got = "";
          const buf = new Uint8Array(4096);
          const deadline = Date.now() + 5000;
          for (;;) {
            const n = await Promise.race([
              conn.read(buf),
              new Promise<"late">((r) => setTimeout(() => r("late"), Math.max(1, deadline - Date.now()))),
            ]);
            assert.notEqual(n, "late", `the connection was not closed; got ${JSON.stringify(got)}`);
            if (n === null) break;
            got += new TextDecoder().decode(buf.subarray(0, n as number));
          }
          assert.match(got, /^HTTP\/1\.1 401 /);
          assert.match(got, /\r\nconnection: close\r\n/i);
          assert.match(got, /status 401\n/);
        } finally {
          conn.close();
        }
      });
      await t.step(
        `HTTP/1.1 → ${host}: body bytes after the 401, then silence: closed within the linger bound`,
        async () => {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port: gw.ports.web });
          try {
            await conn.write(new TextEncoder().encode(
              `POST /status/401 HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 100000\r\n\r\n${
                "x".repeat(1000)
              }`,
            ));
            const buf = new Uint8Array(4096);
            const first = await conn.read(buf);
            assert.ok(
              first !== null && new TextDecoder().decode(buf.subarray(0, first)).startsWith("HTTP/1.1 401 "),
            );
            // More of the body once the answer is in (what a client still uploading sends), then
            // nothing: the gateway discards it for a bounded time only (2 s), then closes.
            await new Promise((r) => setTimeout(r, 100));
            await conn.write(new TextEncoder().encode("y".repeat(1000)));
            // The gateway half-closes first (lingering close), so a FIN here proves nothing: its
            // own count of open connections must come down while this client keeps its socket.
            const open = () =>
              metricSum(gw.adminPort, /^expressgateway_connections_active\{listener="web"\}/);
            const t0 = Date.now();
            while (await open() > 0 && Date.now() - t0 < 6000) await new Promise((r) => setTimeout(r, 100));
            assert.equal(await open(), 0, "the connection was still open 6 s after the client went quiet");
          } finally {
            conn.close();
          }
        },
      );
      await t.step(`h2c → ${host}: the 401, and the session carries the next request`, async () => {
        const r = await run("node", [
          `${ROOT}tests/fixtures/h2_early_client.mjs`,
          String(gw.ports.web),
          host,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout.trim()), { post: 401, get: 200, sessionError: "" });
      });
      await t.step(`HTTP/3 → ${host}: the 401, and the connection carries the next request`, async () => {
        const c = await H3Client.connect({ port: gw.ports.q, ca: pki.caPem });
        try {
          const s = await c.conn.openBidi();
          await s.send.write(H3Client.headersFrame([
            [":method", "POST"],
            [":scheme", "https"],
            [":authority", host],
            [":path", "/status/401"],
            ["content-length", "100000"],
          ]));
          await s.send.write(H3Client.dataFrame(new Uint8Array(1000)));
          const early = await c.readResponse(s);
          assert.equal(early.status, 401);
          const next = await c.request({ path: "/status/200", authority: host });
          assert.equal(next.status, 200);
          assert.equal(c.conn.isClosed, false);
        } finally {
          c.close();
        }
      });
    }
    // Every upload the backends cut short was given up on both legs: nothing in flight, each
    // upstream HTTP/2 stream reset (its connection idle), no client connection left open.
    await t.step("the books balance", async () => await assertSettled(gw));
  } finally {
    await gw.stop();
    await h1.stop();
    await h2.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
