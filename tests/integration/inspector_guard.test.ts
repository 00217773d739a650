/**
 * Deno ≥ 2.9.2 opens an unauthenticated V8 inspector on 127.0.0.1:9229 when a process gets
 * SIGUSR1, the gateway's certificate-rotation signal. The gateway holds that port itself
 * (src/security/inspector_guard.ts), so rotation must rotate and nothing may answer there.
 */
import assert from "node:assert/strict";
import { basicConfig, startGateway } from "../helpers/gateway.ts";
import { run } from "../helpers/run.ts";

Deno.test("SIGUSR1 rotates certificates without opening Deno's inspector on 127.0.0.1:9229", async () => {
  const gw = await startGateway(basicConfig({
    routes: `
  [[listeners.routes]]
  respond = { status = 200, body = "ok" }`,
  }));
  try {
    // Deno installs its SIGUSR1 handler after a 500 ms grace period: signal well after it.
    await new Promise((r) => setTimeout(r, 800));
    gw.signal("SIGUSR1");
    await gw.waitForLog(/TLS certificates reloaded/);
    await new Promise((r) => setTimeout(r, 500));
    const probe = await run("curl", [
      "-s",
      "--max-time",
      "2",
      "-o",
      "/dev/null",
      "-w",
      "%{http_code}",
      "http://127.0.0.1:9229/json/list",
    ]);
    assert.equal(probe.stdout, "000", "nothing speaks HTTP on the inspector port");
    assert.doesNotMatch(gw.logs(), /Debugger listening/);
    assert.equal((await fetch(gw.url("web", "/"))).status, 200, "still serving");
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});
