/**
 * The frame-boundary tracker the tunnel relies on to put its own close frame between two frames
 * (drain, timeouts), and the handshake helpers. Frames are built here by an independent encoder
 * (RFC 6455 §5.2) and fed in every split, so a boundary is never taken inside a header or payload.
 */

import assert from "node:assert/strict";
import { concat } from "../helpers/common.ts";
import { rng } from "./h2/helpers.ts";
import { closeFrame, FrameTracker } from "../../src/websocket/frames.ts";
import { acceptFor, validKey } from "../../src/websocket/handshake.ts";
import { allowedTarget, normalizeTarget } from "../../src/websocket/connect.ts";

/** One frame: FIN + opcode, optional mask, payload of `len` bytes. */
function frame(opcode: number, len: number, masked: boolean): Uint8Array {
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = 2 + ext + (masked ? 4 : 0);
  const out = new Uint8Array(head + len);
  out[0] = 0x80 | opcode;
  out[1] = (masked ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) {
    out[2] = len >> 8;
    out[3] = len & 0xff;
  } else if (ext === 8) {
    const v = new DataView(out.buffer);
    v.setUint32(2, Math.floor(len / 2 ** 32));
    v.setUint32(6, len >>> 0);
  }
  for (let i = head; i < out.length; i++) out[i] = i & 0xff;
  return out;
}

Deno.test("FrameTracker: boundaries are exactly the frame ends, for every chunking", () => {
  const frames = [
    frame(1, 5, true),
    frame(2, 300, false),
    frame(9, 0, true),
    frame(2, 70_000, true),
    frame(1, 125, false),
  ];
  const stream = concat(frames);
  const ends = new Set<number>([0]);
  let o = 0;
  for (const f of frames) ends.add(o += f.length);
  for (const chunk of [1, 2, 3, 7, 13, 1000, 65536, stream.length]) {
    const t = new FrameTracker();
    for (let off = 0; off < stream.length; off += chunk) {
      t.advance(stream.subarray(off, Math.min(stream.length, off + chunk)));
      const at = Math.min(stream.length, off + chunk);
      assert.equal(t.atBoundary, ends.has(at), `chunk ${chunk}, offset ${at}`);
    }
  }
});

Deno.test("FrameTracker: stopAtBoundary takes the rest of the current frame and no more", () => {
  const a = frame(2, 1000, true), b = frame(1, 10, true);
  const t = new FrameTracker();
  assert.equal(t.advance(a.subarray(0, 100)), 100);
  assert.equal(t.atBoundary, false);
  const rest = concat([a.subarray(100), b]);
  assert.equal(t.advance(rest, true), a.length - 100, "stops where frame a ends");
  assert.equal(t.atBoundary, true);
  assert.equal(t.advance(b, true), 0, "already at a boundary: takes nothing");
  // A header split across chunks is not a boundary.
  const u = new FrameTracker();
  assert.equal(u.advance(b.subarray(0, 1)), 1);
  assert.equal(u.atBoundary, false);
  assert.equal(u.advance(concat([b.subarray(1), b]), true), b.length - 1);
  assert.equal(u.atBoundary, true);
});

Deno.test("FrameTracker: a 64-bit length past 2^53 marks the stream broken (no boundary ever)", () => {
  const t = new FrameTracker();
  t.advance(Uint8Array.of(0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 1));
  assert.equal(t.broken, true);
  assert.equal(t.atBoundary, false);
  assert.equal(t.advance(new Uint8Array(10), true), 10);
});

Deno.test("closeFrame: 1001 unmasked towards clients, masked towards servers", () => {
  assert.deepEqual([...closeFrame(1001, false)], [0x88, 0x02, 0x03, 0xe9]);
  const m = closeFrame(1001, true);
  assert.equal(m.length, 8);
  assert.deepEqual([m[0], m[1]], [0x88, 0x82]);
  assert.deepEqual([m[6] ^ m[2], m[7] ^ m[3]], [0x03, 0xe9]);
  const t = new FrameTracker();
  t.advance(m);
  assert.equal(t.atBoundary, true);
});

Deno.test("handshake: Sec-WebSocket-Accept (RFC 6455 §1.3 example) and key validation", () => {
  assert.equal(acceptFor("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert.equal(validKey("dGhlIHNhbXBsZSBub25jZQ=="), true);
  assert.equal(validKey("dGhlIHNhbXBsZSBub25jZQ"), false);
  assert.equal(validKey(undefined), false);
});

Deno.test("CONNECT allow-list: exact host:port, case-insensitive host, no wildcard or port-only forms", () => {
  const cfg = {
    allow: ["Example.com:443", "[::1]:8443", "10.0.0.1:22"],
    connect_timeout: 1,
    idle_timeout: 0,
    max_lifetime: 0,
  };
  assert.equal(allowedTarget(cfg, "example.COM:443"), "example.com:443");
  assert.equal(allowedTarget(cfg, "[::1]:8443"), "[::1]:8443");
  assert.equal(allowedTarget(cfg, "example.com:444"), undefined);
  assert.equal(allowedTarget(cfg, "10.0.0.1:22"), "10.0.0.1:22");
  assert.equal(allowedTarget(cfg, ":443"), undefined);
  assert.equal(normalizeTarget("example.com"), undefined);
  assert.equal(normalizeTarget("a.b:0"), undefined);
});

Deno.test("FrameTracker: 2,000 mutated streams give the same boundaries and verdict in random chunks as byte by byte", () => {
  const rand = rng(6455);
  const seed = concat([frame(1, 5, true), frame(2, 300, false), frame(9, 0, true), frame(2, 1000, true)]);
  let broken = 0;
  for (let round = 0; round < 2000; round++) {
    const b = Array.from(seed);
    for (let e = 0; e < 1 + Math.floor(rand() * 3); e++) {
      // Header bytes are what the tracker reads: edit them as often as all the payload bytes.
      const at = rand() < 0.5 ? Math.floor(rand() * 16) : Math.floor(rand() * b.length);
      if (rand() < 0.7) b[at] = Math.floor(rand() * 256);
      else b.splice(at, 1);
    }
    const bytes = Uint8Array.from(b);
    // The reference: byte by byte, every offset where the tracker is at a boundary.
    const ref = new FrameTracker();
    const boundaries = new Set<number>();
    for (let off = 0; off < bytes.length; off++) {
      ref.advance(bytes.subarray(off, off + 1));
      if (ref.atBoundary) boundaries.add(off + 1);
    }
    if (ref.broken) broken++;
    // In random chunks, the end of each chunk is a boundary exactly when it is one byte by byte.
    const t = new FrameTracker();
    for (let off = 0; off < bytes.length;) {
      const end = Math.min(bytes.length, off + 1 + Math.floor(rand() * 700));
      t.advance(bytes.subarray(off, end));
      assert.equal(t.atBoundary, boundaries.has(end), `round ${round}: offset ${end}`);
      off = end;
    }
    assert.equal(t.broken, ref.broken, `round ${round}: broken`);
  }
  assert.ok(broken > 0, "some mutations break the stream");
});
