/**
 * h3 health probes (src/health/probe.ts h3Probe) against a silent UDP port: each fails with a
 * clear reason within its timeout, and repeated probes do not pile up sockets (they share one
 * client endpoint; Deno frees a closed endpoint's socket only at garbage collection).
 */

import assert from "node:assert/strict";
import { h3Probe } from "../../../src/health/probe.ts";
import { freeTcpUdpPort } from "../../helpers/common.ts";

function socketCount(): number {
  let n = 0;
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (Deno.readLinkSync(`/proc/self/fd/${e.name}`).startsWith("socket:")) n++;
    } catch { /* closed while listing */ }
  }
  return n;
}

Deno.test("h3 probes of a silent port: each fails within its timeout, and sockets do not pile up", async () => {
  const target = { hostname: "127.0.0.1", port: freeTcpUdpPort(), serverName: "localhost", caCerts: [] };
  const first = await h3Probe(target, { kind: "tcp" }, 100);
  assert.equal(first.ok, false);
  assert.match(first.detail, /timed out after 100ms/);
  const before = socketCount();
  for (let i = 0; i < 30; i++) {
    const r = await h3Probe(
      target,
      i % 2 ? { kind: "tcp" } : {
        kind: "http",
        method: "GET",
        path: "/healthz",
        host: "localhost",
        expected: [[200, 399]],
      },
      100,
    );
    assert.equal(r.ok, false, r.detail);
  }
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(socketCount() <= before + 1, `sockets ${before} → ${socketCount()} after 30 probes`);
  const grpc = await h3Probe(target, { kind: "grpc", service: "", authority: "localhost" }, 100);
  assert.deepEqual(grpc, { ok: false, detail: "gRPC health checks need HTTP/2" });
});
