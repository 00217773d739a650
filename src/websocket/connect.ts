/**
 * Generic `CONNECT host:port` tunnels (RFC 9110 §9.3.6, RFC 9113 §8.5): off unless a listener has
 * `connect_tunnels`, and then only to the destinations its `allow` list names exactly ("host:port",
 * host compared case-insensitively). An open proxy is a classic abuse vector, so there are no
 * wildcards: a destination not listed gets 403 and nothing is dialled.
 */

import type { ConnectTunnelsConfig } from "../config/types.ts";
import { parseHostPort } from "../config/units.ts";
import { openConnection } from "../net/connect.ts";
import { ConnStream } from "./streams.ts";

/** "host:port" in one spelling (lower-case host, IPv6 in brackets), or undefined if not one. */
export function normalizeTarget(text: string): string | undefined {
  const s = text.trim();
  if (s.startsWith(":")) return undefined; // parseHostPort reads ":port" as all interfaces
  const hp = parseHostPort(s);
  if (!hp || hp.port === 0) return undefined;
  const host = hp.host.toLowerCase();
  return host.includes(":") ? `[${host}]:${hp.port}` : `${host}:${hp.port}`;
}

/** Is `target` (a CONNECT request target) on the allow list? Returns its normalized form when it is. */
export function allowedTarget(cfg: ConnectTunnelsConfig, target: string): string | undefined {
  const t = normalizeTarget(target);
  if (t === undefined) return undefined;
  for (const a of cfg.allow) if (normalizeTarget(a) === t) return t;
  return undefined;
}

/**
 * Dials an allowed destination. A string result is why not, as an event name:
 * "connect_denied" (not allowed, nothing dialled) or "connect_failed".
 */
export async function openConnectTunnel(
  target: string,
  cfg: ConnectTunnelsConfig,
): Promise<{ target: string; stream: ConnStream } | "connect_denied" | "connect_failed"> {
  const t = allowedTarget(cfg, target);
  if (t === undefined) return "connect_denied";
  const hp = parseHostPort(t)!;
  try {
    const conn = await openConnection({ hostname: hp.host, port: hp.port }, cfg.connect_timeout);
    return { target: t, stream: new ConnStream(conn) };
  } catch {
    return "connect_failed";
  }
}
