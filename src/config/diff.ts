/**
 * What a reload can change live and what needs a restart. Live: pools, backends, routes,
 * timeouts, limits, logging. Restart-required: the listener set, binds, protocols, TLS on/off,
 * a quic listener's raw_proxy presence, alpn and idle_timeout, and the admin bind. Certificate *contents* are reloaded by SIGUSR1, not by a diff.
 */

import type { GatewayConfig, ListenerConfig } from "./types.ts";
import { parseHostPort } from "./units.ts";
import { isLoopback } from "./validate.ts";

/**
 * The admin listener keeps its live bind until a restart, so a reload that drops the token
 * hash (valid for the *new*, loopback bind) must not open /metrics on a live public bind.
 */
function keepsLiveAdminToken(live: GatewayConfig, next: GatewayConfig): boolean {
  const bind = parseHostPort(live.observability.admin_bind);
  return !next.admin.api_token_hash && live.admin.api_token_hash !== undefined &&
    (bind === undefined || !isLoopback(bind.host));
}

/** The part of a listener's raw_proxy that its bound QUIC endpoint holds (null: none). */
function boundRawProxy(l: ListenerConfig): unknown {
  return l.raw_proxy ? { alpn: l.raw_proxy.alpn, idle_timeout: l.raw_proxy.idle_timeout } : null;
}

export function restartRequiredChanges(live: GatewayConfig, next: GatewayConfig): string[] {
  const out: string[] = [];
  const liveByName = new Map(live.listeners.map((l) => [l.name, l]));
  const nextByName = new Map(next.listeners.map((l) => [l.name, l]));
  for (const name of liveByName.keys()) if (!nextByName.has(name)) out.push(`listener '${name}' removed`);
  for (const name of nextByName.keys()) if (!liveByName.has(name)) out.push(`listener '${name}' added`);
  for (const [name, n] of nextByName) {
    const l = liveByName.get(name);
    if (!l) continue;
    if (l.bind !== n.bind) out.push(`listener '${name}' bind ${l.bind} → ${n.bind}`);
    if (l.protocol !== n.protocol) out.push(`listener '${name}' protocol ${l.protocol} → ${n.protocol}`);
    if (JSON.stringify(l.tls ?? null) !== JSON.stringify(n.tls ?? null)) {
      out.push(`listener '${name}' tls settings`);
    }
    if (JSON.stringify(boundRawProxy(l)) !== JSON.stringify(boundRawProxy(n))) {
      out.push(`listener '${name}' raw_proxy added, removed, or its alpn / idle_timeout changed`);
    }
  }
  if (live.observability.admin_bind !== next.observability.admin_bind) {
    out.push(`observability.admin_bind ${live.observability.admin_bind} → ${next.observability.admin_bind}`);
  }
  if (keepsLiveAdminToken(live, next)) {
    out.push(`admin.api_token_hash removal (admin_bind ${live.observability.admin_bind} is not loopback)`);
  }
  if (live.runtime.xdp_enabled !== next.runtime.xdp_enabled) out.push("runtime.xdp_enabled");
  if (live.runtime.workers !== next.runtime.workers) {
    out.push(`runtime.workers ${live.runtime.workers} → ${next.runtime.workers}`);
  }
  return out;
}

/**
 * The config a reload actually applies: `next`, except that restart-required parts keep their
 * live values (a changed bind is logged and skipped, never half-applied).
 */
export function liveApplicable(live: GatewayConfig, next: GatewayConfig): GatewayConfig {
  const listeners = live.listeners.map((l) => {
    const n = next.listeners.find((x) => x.name === l.name);
    if (!n) return l;
    // raw_proxy's alpn and idle_timeout are bound into the QUIC endpoint; the rest (backend,
    // server_name, ca, connect_timeout, stream_reset) applies to new connections.
    const raw_proxy = l.raw_proxy && n.raw_proxy
      ? { ...n.raw_proxy, alpn: l.raw_proxy.alpn, idle_timeout: l.raw_proxy.idle_timeout }
      : l.raw_proxy;
    return { ...n, bind: l.bind, protocol: l.protocol, tls: l.tls, raw_proxy };
  });
  return {
    ...next,
    listeners,
    observability: { ...next.observability, admin_bind: live.observability.admin_bind },
    admin: keepsLiveAdminToken(live, next) ? live.admin : next.admin,
    runtime: { ...next.runtime, xdp_enabled: live.runtime.xdp_enabled, workers: live.runtime.workers },
  };
}
