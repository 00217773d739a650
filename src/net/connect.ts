/**
 * Outbound connections to backends: TCP with a connect timeout, optionally TLS with
 * verification (rustls: the chain is always verified against the system roots plus the
 * configured CA; `verify = false` can only skip the *name* check, which Deno allows).
 */

import type { BackendConfig } from "../config/types.ts";
import { parseHostPort } from "../config/units.ts";

export class ConnectError extends Error {
  constructor(readonly backend: string, override readonly cause: unknown, readonly timedOut = false) {
    super(timedOut ? `connect to ${backend} timed out` : `connect to ${backend} failed: ${describe(cause)}`);
    this.name = "ConnectError";
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export interface ConnectTarget {
  hostname: string;
  port: number;
  tls?: { serverName: string; caCerts?: string[]; verifyName: boolean; alpn?: string[] };
}

/** Reads CA files once per snapshot; the result is shared by every connection to that backend. */
export async function connectTarget(
  b: BackendConfig,
  useTls: boolean,
  alpn?: string[],
): Promise<ConnectTarget> {
  const hp = parseHostPort(b.address)!;
  const target: ConnectTarget = { hostname: hp.host, port: hp.port };
  if (useTls) {
    target.tls = {
      serverName: b.tls?.server_name ?? hp.host,
      caCerts: b.tls?.ca ? [await Deno.readTextFile(b.tls.ca)] : undefined,
      verifyName: b.tls?.verify ?? true,
      alpn,
    };
  }
  return target;
}

/** Opens a connection or throws ConnectError within `timeoutMs`. */
export async function openConnection(t: ConnectTarget, timeoutMs: number): Promise<Deno.Conn> {
  const label = `${t.hostname}:${t.port}`;
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  let tcp: Deno.TcpConn;
  try {
    tcp = await Deno.connect({ hostname: t.hostname, port: t.port, signal: ac.signal });
  } catch (e) {
    throw new ConnectError(label, e, ac.signal.aborted);
  } finally {
    clearTimeout(timer);
  }
  try {
    tcp.setNoDelay(true);
  } catch { /* best effort */ }
  if (!t.tls) return tcp;
  // startTls takes ownership of the TCP resource and returns before the handshake; the
  // timer closes the TLS connection if the handshake stalls.
  let conn: Deno.TlsConn | undefined;
  let timedOut = false;
  const tlsTimer = setTimeout(() => {
    timedOut = true;
    try {
      (conn ?? tcp).close();
    } catch { /* already closed */ }
  }, timeoutMs);
  try {
    conn = await Deno.startTls(tcp, {
      hostname: t.tls.serverName,
      caCerts: t.tls.caCerts,
      alpnProtocols: t.tls.alpn,
      unsafelyDisableHostnameVerification: !t.tls.verifyName,
    });
    await conn.handshake();
    return conn;
  } catch (e) {
    try {
      (conn ?? tcp).close();
    } catch { /* already closed */ }
    throw new ConnectError(label, e, timedOut);
  } finally {
    clearTimeout(tlsTimer);
  }
}
