/**
 * The HTTP/2 connection window (RFC 9113 §6.9) must come back whatever happens to the request
 * bodies it admitted. Here a client sends complete uploads and resets each stream with
 * RST_STREAM(NO_ERROR) at once, in one write, to a host no route matches (the gateway answers 404
 * itself): nothing reads those bodies. Five of them are more than the 4 MiB window the gateway grants; the
 * connection must still carry an upload after them. Client: tests/helpers/h2_raw.ts.
 */

import assert from "node:assert/strict";
import { basicConfig, hostRoutes, poolConfig, startGateway } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { RawH2, u32 } from "../helpers/h2_raw.ts";
import { encodeFrame, ErrorCode, FrameType } from "../../src/http/h2/frames.ts";
import { assertSettled } from "../helpers/settled.ts";

const MiB = 1024 * 1024;

Deno.test("h2: uploads reset at once (NO_ERROR) and answered 404 by the gateway give their connection window back", async () => {
  const origin = await startOrigin("o1");
  const gw = await startGateway(basicConfig({
    extra: `[runtime]\nworkers = 1`,
    listener: `body_timeout = "2s"`,
    routes: hostRoutes({ origin: "app" }),
    pools: poolConfig("app", [origin.address]),
  }));
  const c = await RawH2.connect(gw.ports.web);
  try {
    const post = (host: string, path: string): [string, string][] => [
      [":method", "POST"],
      [":scheme", "http"],
      [":authority", host],
      [":path", path],
    ];
    // 16 KiB DATA frames (the default SETTINGS_MAX_FRAME_SIZE).
    const body = (id: number, bytes: number, end: boolean): Uint8Array[] => {
      const out: Uint8Array[] = [];
      for (let off = 0; off < bytes; off += 16384) {
        const last = off + 16384 >= bytes;
        out.push(
          encodeFrame(
            FrameType.DATA,
            last && end ? 0x1 : 0,
            id,
            new Uint8Array(Math.min(16384, bytes - off)),
          ),
        );
      }
      return out;
    };
    for (let i = 0; i < 5; i++) {
      const id = 1 + 2 * i;
      await c.send(
        c.headers(id, post("local", "/"), 0x4),
        ...body(id, MiB - 16384, true),
        encodeFrame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.NO_ERROR)),
      );
    }
    // Then an upload through to the origin on the same connection: it needs window.
    await c.send(c.headers(11, post("origin", "/sha256"), 0x4), ...body(11, 512 * 1024, true));
    let status = 0;
    for (let i = 0; i < 1000 && status === 0; i++) {
      const f = await c.next(5000);
      if (f === undefined || f === "closed") break;
      if (f.header.type === FrameType.HEADERS && f.header.streamId === 11) {
        status = Number(c.decoder.decode(f.payload).find(([n]) => n === ":status")?.[1] ?? 0);
      }
    }
    assert.equal(
      status,
      200,
      "the upload after the reset ones went through (408 or nothing: the window leaked)",
    );
  } finally {
    c.close();
  }
  await assertSettled(gw);
  await gw.stop();
  await origin.stop();
});
