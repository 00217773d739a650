/**
 * An HTTP/2 request body the gateway gives up on must never reach the backend as complete. When
 * a body passes max_body_size the h2 front answers 413 and drops the rest (src/http/h2/stream.ts,
 * abandonRecv). The upstream writer may be between two reads at that moment; its next read must
 * fail, not wait for the client's END_STREAM and then report the end of the body, or the backend
 * would be handed the part it got as the whole body (a chunked upload gets its last chunk).
 *
 * The DATA frames go out in one write, so the gateway handles them in one pass: the first wakes
 * the upstream writer, the last crosses the cap before that writer reads again.
 */

import assert from "node:assert/strict";
import { basicConfig, poolConfig, startGateway } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { collect, RawH2 } from "../helpers/h2_raw.ts";
import { encodeFrame, FrameType } from "../../src/http/h2/frames.ts";
import { assertSettled } from "../helpers/settled.ts";

const KiB = 1024;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

Deno.test({
  name: "h2 front: a body cut at max_body_size (413) never reaches the backend as a complete request",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const origin = await startOrigin("cut-body");
    const gw = await startGateway(basicConfig({
      listener: `max_body_size = "32KiB"`,
      pools: poolConfig("app", [origin.address]),
      routes: `
  [[listeners.routes]]
  pool = "app"
`,
    })).catch(async (e) => {
      await origin.stop();
      throw e;
    });
    try {
      const before = await origin.completed();
      for (let round = 0; round < 5; round++) {
        const c = await RawH2.connect(gw.ports.web);
        try {
          // No content-length: the length is only known when the body ends (chunked upstream).
          await c.send(c.headers(1, [
            [":method", "POST"],
            [":scheme", "http"],
            [":authority", "cut.test"],
            [":path", "/sha256"],
          ], 0x4));
          await sleep(100); // the request is on its way upstream, its writer waiting for body
          await c.send(
            encodeFrame(FrameType.DATA, 0, 1, new Uint8Array(4 * KiB)),
            encodeFrame(FrameType.DATA, 0, 1, new Uint8Array(16 * KiB)),
            encodeFrame(FrameType.DATA, 0, 1, new Uint8Array(16 * KiB)),
          );
          await sleep(200);
          await c.send(encodeFrame(FrameType.DATA, 0x1, 1, new Uint8Array(0))); // END_STREAM
          const got = await collect(c, 5000, (g) => g.statuses.has(1));
          assert.equal(got.statuses.get(1), 413, `round ${round}`);
        } finally {
          c.close();
        }
      }
      await sleep(300);
      assert.equal(await origin.completed(), before, "the origin was never handed a cut body as whole");
      await assertSettled(gw);
    } finally {
      await gw.stop();
      await origin.stop();
    }
  },
});
