import assert from "node:assert/strict";
import { basicConfig, poolConfig, startGateway } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";

Deno.test("gateway proxies GET and POST to a real origin and round-robins", async () => {
  const a = await startOrigin("a");
  const b = await startOrigin("b");
  const gw = await startGateway(basicConfig({ pools: poolConfig("app", [a.address, b.address]) }));
  try {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const r = await fetch(gw.url("web", "/hi"));
      assert.equal(r.status, 200);
      seen.add(r.headers.get("x-origin")!);
      assert.match(await r.text(), /GET \/hi/);
    }
    assert.deepEqual([...seen].sort(), ["a", "b"]);
    const r = await fetch(gw.url("web", "/sha256"), { method: "POST", body: "hello" });
    const j = await r.json();
    assert.equal(j.bytes, 5);
    assert.equal(j.headers["x-forwarded-for"], "127.0.0.1");
    assert.match(j.headers["via"], /1\.1 expressgateway/);
  } finally {
    assert.equal(await gw.stop(), 0);
    await a.stop();
    await b.stop();
  }
});
