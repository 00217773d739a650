/**
 * grpc.health.v1.Health/Check answered by the gateway itself (listener `grpc_health = true`),
 * from the health verdicts of the pools the listener routes to — so a gRPC-aware client or an
 * orchestrator probing through the gateway learns whether calls can be served right now, without
 * a backend being asked. Semantics (docs/CONFIG.md, gRPC):
 *   service ""  → SERVING when every pool this listener routes to has a healthy backend;
 *   service "S" → the pool of the route matching path "/S/" on the request's authority
 *                 (SERVING / NOT_SERVING), a `respond` route is SERVING, no route → NOT_FOUND.
 */

import type { ListenerConfig } from "../config/types.ts";
import type { Body, HeaderList, ProxyRequest, ProxyResponse } from "../http/exchange.ts";
import type { HealthView, ProxyState } from "../http/proxy.ts";
import type { PoolRuntime } from "../runtime/backends.ts";
import {
  decodeHealthRequest,
  encodeHealthResponse,
  framedLength,
  frameMessage,
  ServingStatus,
  unframeMessage,
} from "./messages.ts";
import { grpcErrorResponse, GrpcStatus } from "./status.ts";

export const HEALTH_CHECK_PATH = "/grpc.health.v1.Health/Check";

/** A HealthCheckRequest is a service name: anything near this size is not one. */
const MAX_REQUEST = 4096;

/** One gRPC message, then trailers `grpc-status: 0`. */
class MessageBody implements Body {
  #done = false;
  constructor(private readonly bytes: Uint8Array) {}
  get length(): number {
    return this.bytes.length;
  }
  get received(): number {
    return this.#done ? this.bytes.length : 0;
  }
  read(): Promise<Uint8Array | null> {
    if (this.#done) return Promise.resolve(null);
    this.#done = true;
    return Promise.resolve(this.bytes);
  }
  trailers(): HeaderList {
    return ["grpc-status", "0"];
  }
  cancel(): void {
    this.#done = true;
  }
}

/** Reads the one request message, bounded; a string is the reason it could not be read. */
async function readRequest(body: Body | null): Promise<Uint8Array | string> {
  if (!body) return new Uint8Array(0);
  let buf = new Uint8Array(0);
  try {
    for (;;) {
      const chunk = await body.read();
      if (chunk === null) break;
      if (buf.length + chunk.length > MAX_REQUEST) {
        body.cancel();
        return "health check request too large";
      }
      const next = new Uint8Array(buf.length + chunk.length);
      next.set(buf);
      next.set(chunk, buf.length);
      buf = next;
    }
  } catch (e) {
    return `request body failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (buf.length === 0) return buf;
  if (buf.length < framedLength(buf)) return "truncated gRPC message";
  const m = unframeMessage(buf)!;
  if (m.compressed) return "compressed health check requests are not supported";
  return m.msg;
}

function poolServing(pool: PoolRuntime | undefined, health: HealthView): boolean {
  if (!pool) return false;
  for (const b of pool.backends.values()) if (b.config.weight > 0 && health.isHealthy(b.key)) return true;
  return false;
}

/** SERVING / NOT_SERVING for `service`, or undefined when no route serves it. */
export function servingStatus(
  service: string,
  authority: string,
  listener: ListenerConfig,
  state: ProxyState,
  health: HealthView,
): number | undefined {
  const ok = (b: boolean) => b ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
  if (service === "") {
    const pools = new Set<string>();
    for (const r of listener.routes) if (r.pool) pools.add(r.pool);
    for (const p of pools) if (!poolServing(state.pools.get(p), health)) return ServingStatus.NOT_SERVING;
    return ServingStatus.SERVING;
  }
  const route = state.routers.get(listener.name)?.match(authority, `/${service}/`);
  if (!route) return undefined;
  if (route.config.respond) return ServingStatus.SERVING;
  return ok(poolServing(state.pools.get(route.config.pool!), health));
}

/** The answer to a Health/Check call. */
export async function answerHealthCheck(
  req: ProxyRequest,
  listener: ListenerConfig,
  state: ProxyState,
  health: HealthView,
): Promise<ProxyResponse> {
  const msg = await readRequest(req.body);
  if (typeof msg === "string") return grpcErrorResponse(GrpcStatus.INTERNAL, msg);
  const service = decodeHealthRequest(msg);
  if (service === undefined) {
    return grpcErrorResponse(GrpcStatus.INTERNAL, "malformed HealthCheckRequest");
  }
  const status = servingStatus(service, req.authority, listener, state, health);
  if (status === undefined) return grpcErrorResponse(GrpcStatus.NOT_FOUND, `unknown service ${service}`);
  return {
    status: 200,
    headers: ["content-type", "application/grpc"],
    body: new MessageBody(frameMessage(encodeHealthResponse(status))),
  };
}
