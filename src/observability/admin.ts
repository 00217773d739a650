/**
 * The admin listener (Deno.serve: fine here, never on the data path): Prometheus /metrics,
 * and the probes /livez, /healthz, /readyz, /startupz. When admin.api_token_hash is set,
 * /metrics (and /status/*) require `Authorization: Bearer <token>`, compared in constant time
 * against the configured sha256; probes stay open so orchestrators need no secret.
 */

import { parseHostPort } from "../config/units.ts";
import { type CollectedFamily, exposition } from "./metrics.ts";

export type Phase = "starting" | "ready" | "draining" | "stopped";

export interface AdminSource {
  phase(): Phase;
  collect(): Promise<CollectedFamily[]>;
  tokenHash(): string | undefined;
  /** Extra JSON endpoints under /status/ (e.g. backends); undefined → 404. */
  status?(name: string): unknown;
  /**
   * POST /workers/<id>/restart: recycle one data-plane worker (its in-flight requests are
   * lost, as in a crash). False when there is no such worker (single-isolate mode).
   */
  restartWorker?(id: number): boolean;
  /** A handler or collection bug (logged by the owner; the client gets a 500). */
  onError?(e: unknown): void;
}

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

export class AdminServer {
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;

  constructor(private readonly source: AdminSource) {}

  /** Binds now (throws on failure) so a gateway never runs without its probes. */
  start(bind: string): number {
    const hp = parseHostPort(bind);
    if (!hp) throw new Error(`admin_bind: invalid address '${bind}'`);
    this.#server = Deno.serve(
      {
        hostname: hp.host,
        port: hp.port,
        onListen: () => {},
        // Last net: a bug in a handler answers 500 instead of Deno's default console dump.
        onError: (e) => {
          this.source.onError?.(e);
          return text(500, "internal error\n");
        },
      },
      (req) => this.#handle(req),
    );
    return this.#server.addr.port;
  }

  async stop(): Promise<void> {
    const s = this.#server;
    this.#server = undefined;
    try {
      await s?.shutdown();
    } catch { /* already shut down */ }
  }

  async #handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const restart = /^\/workers\/(\d+)\/restart$/.exec(url.pathname);
    if (restart && req.method === "POST" && this.source.restartWorker) {
      if (!(await this.#authorized(req))) return unauthorized();
      return this.source.restartWorker(Number(restart[1]))
        ? text(202, "restarting\n")
        : text(404, "no such worker\n");
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    const phase = this.source.phase();
    switch (url.pathname) {
      case "/livez":
        return text(200, "ok\n");
      case "/healthz":
        return phase === "stopped" ? text(503, "stopped\n") : text(200, "ok\n");
      case "/readyz":
        return phase === "ready" ? text(200, "ready\n") : text(503, `${phase}\n`);
      case "/startupz":
        return phase === "starting" ? text(503, "starting\n") : text(200, "started\n");
      case "/metrics": {
        if (!(await this.#authorized(req))) return unauthorized();
        let body: string;
        try {
          body = exposition(await this.source.collect());
        } catch (e) {
          // Never let a collection bug take the admin listener down; say so, and scrape again.
          this.source.onError?.(e);
          return text(500, "metrics collection failed\n");
        }
        return new Response(body, { headers: { "content-type": METRICS_CONTENT_TYPE } });
      }
    }
    if (url.pathname.startsWith("/status/") && this.source.status) {
      if (!(await this.#authorized(req))) return unauthorized();
      const data = this.source.status(url.pathname.slice("/status/".length));
      if (data !== undefined) return Response.json(data);
    }
    return text(404, "not found\n");
  }

  /**
   * The bearer token is hashed and the digests compared in constant time, so neither the
   * token's length nor a matching prefix shows in the timing; a missing or malformed header
   * is hashed too (as the empty token) for the same reason.
   */
  async #authorized(req: Request): Promise<boolean> {
    const expected = this.source.tokenHash();
    if (!expected) return true;
    const m = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(req.headers.get("authorization") ?? "");
    const digest = await sha256Hex(m ? m[1] : "");
    const ok = constantTimeEqual(`sha256:${digest}`, expected.trim().toLowerCase());
    return ok && m !== null;
  }
}

function text(status: number, body: string): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

function unauthorized(): Response {
  return new Response("unauthorized\n", {
    status: 401,
    headers: { "www-authenticate": 'Bearer realm="expressgateway"' },
  });
}

export async function sha256Hex(s: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Compares without an early exit, so timing does not reveal how much of a token matched. */
export function constantTimeEqual(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) diff |= (a.charCodeAt(i) || 0) ^ (b.charCodeAt(i) || 0);
  return diff === 0;
}
