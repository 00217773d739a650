/**
 * A graceful drain of an HTTP/2 connection (RFC 9113 §6.8) while the client is opening a new
 * stream: our GOAWAY(NO_ERROR) names the last stream we take; a POST the client had already on
 * its way (HEADERS, then DATA) crosses it. That stream is ignored, its DATA counted against the
 * connection window and dropped; the request in progress still completes, and nothing turns
 * the drain into a connection error or a GOAWAY with a higher last stream id (which would tell
 * the client that the ignored request might have been processed). Client: tests/helpers/h2_raw.ts.
 */

import assert from "node:assert/strict";
import { basicConfig, poolConfig, startGateway } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { errorCodeOf, RawH2 } from "../helpers/h2_raw.ts";
import { encodeFrame, ErrorCode, FrameType } from "../../src/http/h2/frames.ts";
import { within } from "../helpers/common.ts";

Deno.test("h2 drain: a stream that crosses our GOAWAY is ignored; the stream in progress completes", async () => {
  const origin = await startOrigin("o1");
  const gw = await startGateway(basicConfig({
    extra: `[runtime]\nworkers = 1\ndrain_timeout = "5s"`,
    pools: poolConfig("app", [origin.address]),
  }));
  const c = await RawH2.connect(gw.ports.web);
  try {
    const get = (path: string): [string, string][] => [
      [":method", "GET"],
      [":scheme", "http"],
      [":authority", "x"],
      [":path", path],
    ];
    await c.send(c.headers(1, get("/slow?ms=1500")));
    await new Promise((r) => setTimeout(r, 200));
    gw.signal("SIGTERM");
    const goaway = await c.waitFor(FrameType.GOAWAY, 0, 5000);
    assert.ok(goaway !== undefined && goaway !== "closed", "a GOAWAY when the drain starts");
    const view = new DataView(goaway.payload.buffer, goaway.payload.byteOffset);
    assert.equal(view.getUint32(0) & 0x7fffffff, 1, "the last stream taken is 1");
    assert.equal(errorCodeOf(goaway), ErrorCode.NO_ERROR);
    // A POST already on its way: HEADERS, a DATA frame, trailers-free end.
    await c.send(
      c.headers(
        3,
        [[":method", "POST"], [":scheme", "http"], [":authority", "x"], [":path", "/sha256"]],
        0x4,
      ),
      encodeFrame(FrameType.DATA, 0, 3, new Uint8Array(1000)),
      encodeFrame(FrameType.DATA, 0x1, 3, new Uint8Array(1000)),
    );
    // Stream 1 completes; anything else on the connection must be harmless.
    let status = 0, ended = false;
    const others: string[] = [];
    for (let i = 0; i < 200 && !ended; i++) {
      const f = await c.next(5000);
      if (f === undefined || f === "closed") {
        others.push(String(f));
        break;
      }
      const { type, flags, streamId } = f.header;
      if (type === FrameType.GOAWAY) {
        const last = new DataView(f.payload.buffer, f.payload.byteOffset).getUint32(0) & 0x7fffffff;
        others.push(`GOAWAY last=${last} code=${errorCodeOf(f)}`);
      } else if (streamId === 1 && type === FrameType.HEADERS) {
        status = Number(c.decoder.decode(f.payload).find(([n]) => n === ":status")?.[1] ?? 0);
        if (flags & 0x1) ended = true;
      } else if (streamId === 1 && type === FrameType.DATA) {
        if (flags & 0x1) ended = true;
      } else if (streamId === 3) others.push(`stream 3 type ${type}`);
    }
    assert.equal(status, 200, `stream 1 answered (then: ${others.join(", ")})`);
    assert.ok(ended, `stream 1 ended (then: ${others.join(", ")})`);
    for (const o of others) {
      assert.doesNotMatch(o, /GOAWAY last=(?!1 code=0$)/, "a second GOAWAY raised the last id or an error");
    }
  } finally {
    c.close();
    const st = await within(gw.child.status, 15_000, "the gateway exits after its drain");
    assert.equal(st.code, 0);
    await gw.stop();
    await origin.stop();
  }
});
