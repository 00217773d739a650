/**
 * A client that resets an HTTP/2 stream while its response is streaming from an idle upstream
 * (an event stream between events, a long poll) frees the upstream at once: the backend's
 * connection and in-flight count do not wait for the backend's next chunk or response_timeout.
 * Client: tests/helpers/h2_raw.ts; origin: tests/fixtures/origin.mjs /drip (a line, then the
 * rest 10 s later).
 */

import assert from "node:assert/strict";
import { basicConfig, poolConfig, startGateway } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { RawH2, u32 } from "../helpers/h2_raw.ts";
import { encodeFrame, ErrorCode, FrameType } from "../../src/http/h2/frames.ts";
import { assertSettled } from "../helpers/settled.ts";
import { metricSum } from "../helpers/common.ts";

Deno.test("h2: a stream reset mid-response frees its idle upstream at once", async () => {
  const origin = await startOrigin("o1");
  const gw = await startGateway(basicConfig({
    extra: `[runtime]\nworkers = 1`,
    pools: poolConfig("app", [origin.address], `response_timeout = "30s"`),
  }));
  const c = await RawH2.connect(gw.ports.web);
  try {
    await c.send(
      c.headers(1, [[":method", "GET"], [":scheme", "http"], [":authority", "x"], [
        ":path",
        "/drip?ms=10000",
      ]]),
    );
    const data = await c.waitFor(FrameType.DATA, 1, 5000);
    assert.ok(data !== undefined && data !== "closed", "the first line arrives");
    assert.equal(await metricSum(gw.adminPort, /^expressgateway_backend_in_flight\{/), 1);
    await c.send(encodeFrame(FrameType.RST_STREAM, 0, 1, u32(ErrorCode.CANCEL)));
    // Within 2 s, not at the origin's end (10 s) or response_timeout (30 s); the client's
    // connection stays open meanwhile.
    await assertSettled(gw, { clientsGone: false, timeoutMs: 2000 });
  } finally {
    c.close();
  }
  await gw.stop();
  await origin.stop();
});
