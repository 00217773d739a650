/**
 * A bound TCP or TLS listener and its accept loop. Binding is separate from serving so the
 * gateway can bind every listener first and start none if any bind fails (never half-up).
 * Every listener binds with reusePort: data-plane workers share ports that way, and a TLS
 * listener re-binds next to itself to rotate certificates without refusing connections.
 */

import type { ListenerConfig } from "../config/types.ts";
import { parseHostPort } from "../config/units.ts";
import type { Logger } from "../observability/log.ts";
import { CertificateStore, tlsListenOptions } from "../security/tls.ts";
import { bindWithNoDelay, type NoDelayResult } from "./tcp_nodelay.ts";

export class BindError extends Error {
  constructor(readonly listener: string, readonly bind: string, cause: unknown) {
    super(`listener '${listener}' cannot bind ${bind}: ${describe(cause)}`);
    this.name = "BindError";
  }
}

function describe(e: unknown): string {
  if (e instanceof Deno.errors.AddrInUse) return "address already in use";
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.AddrNotAvailable) return "address not available on this host";
  return e instanceof Error ? e.message : String(e);
}

/** https listeners offer HTTP/2 first, then HTTP/1.1 (the data plane dispatches on the result). */
export const HTTPS_ALPN: string[] = ["h2", "http/1.1"];

export type ConnHandler = (conn: Deno.Conn, tls: boolean) => void;

/** A TLS listener on the store's certificates, with TCP_NODELAY for what it accepts. */
function bindTls(certs: CertificateStore, host: string, port: number, alpn: string[]) {
  return bindWithNoDelay(() => Deno.listenTls(tlsListenOptions(certs, host, port, alpn)));
}

export class BoundListener {
  #listener: Deno.Listener;
  #closed = false;
  #handler: ConnHandler | undefined;
  /**
   * https only: whether accepted sockets get TCP_NODELAY (src/net/tcp_nodelay.ts); plain TCP
   * connections get it per connection from setNoDelay(), so they report "set".
   */
  noDelay: NoDelayResult = "set";

  private constructor(
    readonly cfg: ListenerConfig,
    listener: Deno.Listener,
    readonly certs?: CertificateStore,
  ) {
    this.#listener = listener;
  }

  static async bind(cfg: ListenerConfig, alpn: string[] = HTTPS_ALPN): Promise<BoundListener> {
    const addr = parseHostPort(cfg.bind)!;
    try {
      if (cfg.protocol === "https") {
        const certs = new CertificateStore(cfg.tls!);
        await certs.load();
        const { listener, noDelay } = bindTls(certs, addr.host, addr.port, alpn);
        const bound = new BoundListener(cfg, listener, certs);
        bound.noDelay = noDelay;
        return bound;
      }
      const l = Deno.listen(
        { hostname: addr.host, port: addr.port, reusePort: true } as Deno.TcpListenOptions,
      );
      return new BoundListener(cfg, l);
    } catch (e) {
      throw new BindError(cfg.name, cfg.bind, e);
    }
  }

  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  serve(handler: ConnHandler, log: Logger): void {
    this.#handler = handler;
    this.#warnNoDelay(log);
    this.#acceptLoop(this.#listener, log);
  }

  #warnNoDelay(log: Logger): void {
    if (this.noDelay === "set") return;
    log.warn("TCP_NODELAY is not set on this https listener's sockets: a response can stall up to 40 ms", {
      listener: this.cfg.name,
      reason: this.noDelay === "unavailable" ? "no FFI (run with --allow-ffi)" : "listening socket not found",
    });
  }

  async #acceptLoop(listener: Deno.Listener, log: Logger): Promise<void> {
    const tls = this.cfg.protocol === "https";
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (this.#closed || listener !== this.#listener || e instanceof Deno.errors.BadResource) return;
        // EMFILE and friends: one bad accept never stops the listener.
        log.warn("accept failed", { listener: this.cfg.name, error: describe(e) });
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      try {
        this.#handler!(conn, tls);
      } catch (e) {
        log.error("connection handler failed", { listener: this.cfg.name, error: describe(e) });
        try {
          conn.close();
        } catch { /* already closed */ }
      }
    }
  }

  /**
   * SIGUSR1: re-read the certificate files and re-bind next to the current socket (reusePort),
   * then close the old one. Existing connections are untouched; new handshakes see the new
   * certificates. On any error the old listener keeps serving.
   */
  async rotateCertificates(log: Logger, alpn: string[] = HTTPS_ALPN): Promise<void> {
    if (!this.certs) return;
    await this.certs.load();
    const addr = parseHostPort(this.cfg.bind)!;
    const { listener: next, noDelay } = bindTls(this.certs, addr.host, this.port || addr.port, alpn);
    this.noDelay = noDelay;
    this.#warnNoDelay(log);
    const old = this.#listener;
    this.#listener = next;
    if (this.#handler) this.#acceptLoop(next, log);
    try {
      old.close();
    } catch { /* already closed */ }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
  }
}
