/**
 * The extra origins of the gRPC and WebSocket scenarios, each a real server on node, started
 * for its scenario only (on the port every proxy's config already names), pinned with the nginx
 * origin, stopped after it: scripts/bench_harness/grpc_origin.mjs (@grpc/grpc-js, h2c) and
 * scripts/bench_harness/ws_origin.mjs (npm ws, RFC 6455 echo).
 */

import type { Ctx } from "./proxies.ts";
import { spawn, stop, waitForPorts } from "./procs.ts";

const HERE = new URL(".", import.meta.url).pathname;

export async function startNodeOrigin(
  ctx: Ctx,
  kind: "grpc" | "ws",
): Promise<{ stop(): Promise<void> }> {
  const port = kind === "grpc" ? ctx.setup.grpcOriginPort : ctx.setup.wsOriginPort;
  const proc = spawn(`${kind}-origin`, "node", [`${HERE}${kind}_origin.mjs`, String(port)], {
    cpus: ctx.opts.originCpus,
  });
  try {
    await waitForPorts(proc, [port]);
  } catch (e) {
    await stop(proc);
    throw e;
  }
  return { stop: () => stop(proc) };
}

function originCpu(ctx: Ctx): string {
  return ctx.opts.originCpus ? `, CPU ${ctx.opts.originCpus}` : "";
}

export function grpcNote(ctx: Ctx): string {
  return 'Each proxy: HTTP/2 to the gRPC origin (gateway: pool backend `protocol = "h2c"`; nginx: ' +
    "`grpc_pass grpc://`, `keepalive 64`; HAProxy: `server … proto h2`; Caddy: `transport http { versions h2c }`; " +
    "nghttpx: `backend=…;proto=h2`), trailers passed through (a curl probe checks `grpc-status: 0` " +
    "through each proxy before its cells run). The origin is JavaScript (node, one thread" + originCpu(ctx) +
    ") and much slower than the nginx origin, so req/s here is bounded by it for every proxy " +
    "alike: the CPU µs/req column (the proxy's own process tree) is the comparison that matters.";
}

export function wsNote(ctx: Ctx): string {
  return "Each proxy: its own port in front of the WebSocket origin, HTTP/1.1 Upgrade passed through, " +
    "then bytes relayed both ways (gateway: a pool with `websocket = true`, the default; nginx: " +
    '`proxy_set_header Upgrade $http_upgrade`, `Connection "upgrade"`; HAProxy: `timeout tunnel 300s`; ' +
    "Caddy: `reverse_proxy`, which upgrades on its own). req/s here is echoed messages (round trips) per second. " +
    "The origin is JavaScript (node + ws, one thread" + originCpu(ctx) +
    "), so, as for gRPC, the CPU µs/req " +
    "column (here µs per echoed message) is the comparison that matters.";
}
