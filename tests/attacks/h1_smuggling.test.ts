/**
 * Request smuggling against the live gateway: every request of the corpus
 * (tests/unit/h1/corpus.ts) is written on a raw TCP socket; the gateway must answer 400 (or
 * the stated status) and close the connection, and the origin behind it must see nothing
 * (its request counter does not move). Requests that RFC 9112 makes valid despite looking
 * odd (tab as OWS, `Chunked` in another case, trailing OWS) must be forwarded intact.
 */

import assert from "node:assert/strict";
import { basicConfig, type GatewayProcess, poolConfig, startGateway } from "../helpers/gateway.ts";
import { assertSettled } from "../helpers/settled.ts";
import { type Origin, startOrigin } from "../helpers/origin.ts";
import { latin1Bytes, SMUGGLING } from "../unit/h1/corpus.ts";
import { RawClient, rawOnce, text } from "../unit/h1/raw_client.ts";

interface Stats {
  requests: number;
  completed: number;
}

async function stats(o: Origin): Promise<Stats> {
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

async function withGateway(fn: (gw: GatewayProcess, origin: Origin) => Promise<void>): Promise<void> {
  const origin = await startOrigin("smuggle-origin");
  const gw = await startGateway(basicConfig({
    pools: poolConfig("app", [origin.address]),
    routes: `
  [[listeners.routes]]
  host = "real.test"
  pool = "app"
  [[listeners.routes]]
  host = "h"
  pool = "app"
`,
  }));
  try {
    await fn(gw, origin);
    // No refused or smuggled request may have left anything counted.
    await assertSettled(gw);
  } finally {
    assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
}

Deno.test("smuggling corpus: 400 (or the stated status), connection closed, origin sees nothing", async () => {
  await withGateway(async (gw, origin) => {
    const port = gw.ports.web;
    const errorsBefore = await metric(gw, /^expressgateway_protocol_events_total\{.*event="parse_error"/);
    let early = 0;
    for (const c of SMUGGLING) {
      const before = await stats(origin);
      const res = await rawOnce(port, latin1Bytes(c.raw), {
        timeoutMs: 5000,
        halfClose: c.name.startsWith("connection closed"),
      });
      const status = c.status ?? 400;
      assert.match(
        res.text,
        new RegExp(`^HTTP/1\\.1 ${status} `),
        `${c.name}: got ${JSON.stringify(res.text)}`,
      );
      assert.match(res.text, /\r\nconnection: close\r\n/i, c.name);
      assert.ok(res.closed, `${c.name}: connection left open`);
      // nothing after the one error response (a smuggled second request was not answered)
      assert.equal(res.text.indexOf("HTTP/1.1", 1), -1, `${c.name}: more than one response`);
      const after = await stats(origin);
      if (c.late) {
        // The head and a first chunk were already streaming when the framing error showed:
        // the origin may have seen a head, but never a complete request.
        assert.equal(after.completed, before.completed, `${c.name}: origin got a complete request`);
      } else {
        assert.equal(after.requests, before.requests, `${c.name}: origin saw the request`);
        early++;
      }
    }
    assert.ok(early >= SMUGGLING.length - 1);
    const errorsAfter = await metric(
      gw,
      /^expressgateway_protocol_events_total\{.*event="(parse_error|bad_chunked_body)"/,
    );
    assert.ok(errorsAfter - errorsBefore >= SMUGGLING.length - 2, `parse errors counted: ${errorsAfter}`);
    // the gateway still serves normal traffic afterwards
    const ok = await rawOnce(port, "GET /fine HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert.match(ok.text, /^HTTP\/1\.1 200 /);
  });
});

Deno.test("oversized heads through the gateway: request line → 414, header block → 431, both closed", async () => {
  await withGateway(async (gw, origin) => {
    const before = await stats(origin);
    const port = gw.ports.web;
    // defaults: max_request_line 8 KiB, max_header_size 32 KiB
    const longLine = await rawOnce(port, `GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: h\r\n\r\n`);
    assert.match(longLine.text, /^HTTP\/1\.1 414 /);
    assert.ok(longLine.closed);
    let big = "GET / HTTP/1.1\r\nHost: h\r\n";
    for (let i = 0; i < 50; i++) big += `X-Big-${i}: ${"b".repeat(1000)}\r\n`;
    const bigHead = await rawOnce(port, big + "\r\n");
    assert.match(bigHead.text, /^HTTP\/1\.1 431 /);
    assert.ok(bigHead.closed);
    // a head that never ends is cut at the cap too, without waiting for a timeout
    const endless = await rawOnce(port, big, { timeoutMs: 3000 });
    assert.match(endless.text, /^HTTP\/1\.1 431 /);
    assert.ok(endless.closed);
    assert.equal((await stats(origin)).requests, before.requests);
  });
});

Deno.test("CL.TE: the smuggled suffix is never parsed as a second request", async () => {
  await withGateway(async (gw, origin) => {
    const before = await stats(origin);
    // If the gateway used Content-Length here, "0\r\n\r\nG" would be left over and prefix the
    // next request (the classic CL.TE attack); if it used chunked, "GET /admin" would follow.
    const c = await RawClient.connect(gw.ports.web);
    try {
      await c.write(
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 35\r\nTransfer-Encoding: chunked\r\n\r\n" +
          "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n",
      );
      const r = await c.readResponse();
      assert.equal(r.status, 400);
      assert.ok(await c.waitClosed(3000));
    } finally {
      c.close();
    }
    assert.equal((await stats(origin)).requests, before.requests);
  });
});

Deno.test("valid per RFC 9112 although unusual: forwarded with the body intact", async () => {
  await withGateway(async (gw) => {
    const cases: Array<{ name: string; framing: string; body: string; expect: string }> = [
      // OWS is SP / HTAB (RFC 9110 §5.6.3): a tab before the value is plain whitespace.
      {
        name: "tab as OWS",
        framing: "Transfer-Encoding:\tchunked",
        body: "5\r\nhello\r\n0\r\n\r\n",
        expect: "hello",
      },
      // Transfer-coding names are case-insensitive (RFC 9112 §7).
      {
        name: "Chunked",
        framing: "Transfer-Encoding: Chunked",
        body: "3\r\nabc\r\n0\r\n\r\n",
        expect: "abc",
      },
      // Trailing OWS is not part of the field value (RFC 9112 §5).
      {
        name: "trailing OWS",
        framing: "Transfer-Encoding: chunked \t",
        body: "2\r\nhi\r\n0\r\n\r\n",
        expect: "hi",
      },
      { name: "CL with OWS", framing: "Content-Length:   4  ", body: "abcd", expect: "abcd" },
      { name: "CL with leading zeros", framing: "Content-Length: 0004", body: "wxyz", expect: "wxyz" },
    ];
    for (const c of cases) {
      const conn = await RawClient.connect(gw.ports.web);
      try {
        await conn.write(`POST /sha256 HTTP/1.1\r\nHost: h\r\n${c.framing}\r\n\r\n${c.body}`);
        const r = await conn.readResponse();
        assert.equal(r.status, 200, c.name);
        const j = JSON.parse(text(r.body));
        assert.equal(j.bytes, c.expect.length, c.name);
        const want = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(c.expect));
        assert.equal(
          j.sha256,
          [...new Uint8Array(want)].map((b) => b.toString(16).padStart(2, "0")).join(""),
        );
      } finally {
        conn.close();
      }
    }
  });
});

Deno.test("absolute-form target: its authority wins over Host, for routing and upstream Host", async () => {
  await withGateway(async (gw, origin) => {
    let r = await rawOnce(
      gw.ports.web,
      "GET http://real.test/headers?x=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    );
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    const j = JSON.parse(r.text.slice(r.text.indexOf("\r\n\r\n") + 4));
    assert.equal(j.headers.host, "real.test");
    assert.equal(j.headers["x-forwarded-host"], "real.test");
    assert.equal(j.url, "/headers?x=1");
    // and the other way round: Host would route, the target's authority does not
    const before = await stats(origin);
    r = await rawOnce(
      gw.ports.web,
      "GET http://other.test/headers HTTP/1.1\r\nHost: real.test\r\nConnection: close\r\n\r\n",
    );
    assert.match(r.text, /^HTTP\/1\.1 404 /);
    assert.equal((await stats(origin)).requests, before.requests);
  });
});

Deno.test("a body the backend answered before reading is never parsed as the next request", async () => {
  await withGateway(async (gw, origin) => {
    const conn = await RawClient.connect(gw.ports.web);
    try {
      const smuggled = "GET /headers?smuggled=1 HTTP/1.1\r\nHost: h\r\n\r\n";
      const length = 100_000;
      // The origin's /status route answers without waiting for the body; the rest of the body,
      // sent after that answer, starts with what looks like a request of its own. A 204 has no
      // body, so the upstream exchange ends (and cancels the unsent request body) before the
      // server decides on keep-alive: the case where a cancelled body must not count as read.
      await conn.write(`POST /status/204 HTTP/1.1\r\nHost: h\r\nContent-Length: ${length}\r\n\r\n0123456789`);
      const r = await conn.readResponse();
      assert.equal(r.status, 204);
      const before = await stats(origin);
      await conn.write(smuggled + "x".repeat(length - 10 - smuggled.length)).catch(() => {});
      const rest = await conn.readToEnd(5000);
      assert.ok(rest.closed, "the connection must end: the unread body leaves no request boundary");
      assert.equal(rest.text.indexOf("HTTP/1.1"), -1, `a second response: ${JSON.stringify(rest.text)}`);
      assert.equal(
        (await stats(origin)).requests,
        before.requests,
        "the smuggled request reached the origin",
      );
    } finally {
      conn.close();
    }
  });
});
