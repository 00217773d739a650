/**
 * Gateway answers (src/http/exchange.ts: gatewayResponse, bytesBody): the UTF-8 of a repeated
 * text is encoded once and shared, yet each answer's body is its own (read once, its own
 * `received`, cancel affects only it), and the framing fields match the bytes.
 */

import assert from "node:assert/strict";
import { bytesBody, gatewayResponse, getHeader } from "../../src/http/exchange.ts";

Deno.test("gateway answers: one text's bytes are shared, each body is read on its own", async () => {
  const a = gatewayResponse(404, "no route for this host and path\n");
  const b = gatewayResponse(404, "no route for this host and path\n");
  assert.equal(getHeader(a.headers, "content-length"), "32");
  assert.equal(getHeader(a.headers, "content-type"), "text/plain; charset=utf-8");
  const first = await a.body!.read();
  assert.equal(new TextDecoder().decode(first!), "no route for this host and path\n");
  assert.equal(await a.body!.read(), null, "read once");
  assert.equal(a.body!.received, 32);
  assert.equal(b.body!.received, 0, "the other answer is untouched");
  b.body!.cancel();
  assert.equal(b.body!.tryRead!(), null, "cancelled: nothing more");
  const c = gatewayResponse(503, "no route for this host and path\n");
  const shared = c.body!.tryRead!();
  assert.equal(shared, first, "the same text's bytes are encoded once and shared");
});

Deno.test("gateway answers: non-ASCII texts are UTF-8, long and many distinct texts still answer right", () => {
  const r = gatewayResponse(200, "héllo ✓\n");
  assert.equal(getHeader(r.headers, "content-length"), "11");
  assert.equal(new TextDecoder().decode(r.body!.tryRead!()!), "héllo ✓\n");
  const long = "x".repeat(100_000);
  assert.equal(gatewayResponse(200, long).body!.length, 100_000);
  // More distinct texts than the cache keeps (the cache starts over): every answer still carries its own text.
  for (let i = 0; i < 600; i++) {
    const text = `upstream failed: error ${i}\n`;
    const body = gatewayResponse(502, text).body!;
    assert.equal(new TextDecoder().decode(body.tryRead!()!), text);
  }
  assert.equal(gatewayResponse(200, "").body!.tryRead!(), null, "an empty body ends at once");
});

Deno.test("bytesBody: length, received and trailers of a body in hand", async () => {
  const body = bytesBody(new Uint8Array([1, 2, 3]));
  assert.equal(body.length, 3);
  assert.equal(body.received, 0);
  assert.deepEqual(await body.read(), new Uint8Array([1, 2, 3]));
  assert.equal(body.received, 3);
  assert.equal(body.trailers(), undefined);
  assert.equal(await body.read(), null);
});
