/**
 * A `protocol = "quic"` listener: one QUIC endpoint (one UDP socket, src/quic/engine.ts)
 * offering ALPN "h3", whose connections the data plane hands to H3ServerConn — or, with
 * `raw_proxy` (QUIC Mode B), offering `raw_proxy.alpn` and handing them to the relay
 * (src/quic/raw_proxy.ts) with the transport settings that suit a relay. Binding is
 * separate from serving so the data plane can bind every listener first and start none if
 * one fails (never half-up).
 *
 * One certificate per endpoint: Deno.QuicEndpoint.listen takes a single cert/key pair and has
 * no SNI resolver, so `tls.certificates` (SNI) is refused for quic listeners at --check, and
 * SIGUSR1 cannot swap the certificate of a bound endpoint (no reusePort for UDP): a quic
 * listener keeps the certificate it started with until restart (docs/QUIC.md).
 */

import type { ListenerConfig } from "../../config/types.ts";
import { parseHostPort } from "../../config/units.ts";
import { BindError } from "../../net/listener.ts";
import { type QuicConnection, QuicServer } from "../../quic/engine.ts";
import { CertificateStore } from "../../security/tls.ts";

export const H3_ALPN = ["h3"];

/** Concurrent unidirectional streams a client may open: control + QPACK encoder/decoder + a few GREASE. */
const MAX_UNI_STREAMS = 16;
/** QUIC PINGs keep a connection alive while a request waits on a slow upstream. */
const MAX_KEEPALIVE_MS = 10_000;

export class QuicListener {
  private constructor(public cfg: ListenerConfig, readonly server: QuicServer) {}

  static async bind(cfg: ListenerConfig): Promise<QuicListener> {
    const addr = parseHostPort(cfg.bind)!;
    try {
      const certs = new CertificateStore(cfg.tls!);
      await certs.load();
      const pair = certs.defaultPair;
      const raw = cfg.raw_proxy;
      const server = QuicServer.bind({
        hostname: addr.host,
        port: addr.port,
        cert: pair.cert,
        key: pair.key,
        ...(raw
          ? {
            // Mode B: the client's own idle timeout and PINGs govern (the relay pings only the
            // backend leg), and the application protocol is unknown, so both stream kinds get
            // the same limit.
            alpn: [...raw.alpn],
            maxIdleTimeoutMs: raw.idle_timeout,
            maxBidiStreams: cfg.quic_max_streams,
            maxUniStreams: cfg.quic_max_streams,
          }
          : {
            alpn: H3_ALPN,
            // The transport idle timeout is the backstop; the H3 layer closes idle connections
            // itself (GOAWAY) after idle_timeout without requests, and PINGs keep busy ones up.
            maxIdleTimeoutMs: cfg.idle_timeout + MAX_KEEPALIVE_MS,
            keepAliveMs: Math.min(MAX_KEEPALIVE_MS, Math.max(1000, Math.floor(cfg.idle_timeout / 2))),
            maxBidiStreams: cfg.quic_max_streams,
            maxUniStreams: MAX_UNI_STREAMS,
          }),
      });
      return new QuicListener(cfg, server);
    } catch (e) {
      throw new BindError(cfg.name, cfg.bind, e);
    }
  }

  get port(): number {
    return this.server.port;
  }

  serve(onConnection: (c: QuicConnection) => void, onError: (e: unknown) => void): void {
    this.server.serve(onConnection, onError);
  }

  stopAccepting(): void {
    this.server.stopAccepting();
  }

  close(): void {
    this.server.close(0x100, "shutting down");
  }
}
