/**
 * The gateway's books balance once its traffic is over: whatever a test threw at it (mangled
 * bytes, resets, timeouts, early answers), every request it accepted must have left the in-flight
 * counts, and every upstream connection it keeps must be idle. A leak here is a real fault even if
 * every answer was right: the in-flight cap (runtime.max_in_flight) would fill up and refuse all
 * traffic one day, and least_request/p2c/ewma would shun a backend for requests long gone.
 *
 * Read from /metrics, as an operator would see it. The gauges are set when /metrics is served.
 */

import type { GatewayProcess } from "./gateway.ts";

export interface SettledOptions {
  /**
   * Also require no open client connection, TCP relay or UDP session, and no relayed QUIC
   * connection (the test has closed all of its own, and its UDP sessions expired). Default true.
   */
  clientsGone?: boolean;
  /** How long the books may take to balance (a cut connection is noticed at its next read). */
  timeoutMs?: number;
}

interface Sample {
  name: string;
  labels: string;
  value: number;
}

function samples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.push({ name: m[1], labels: m[2] ?? "", value: Number(m[3]) });
  }
  return out;
}

/** What does not balance right now ([] when everything does). */
export function unbalanced(text: string, clientsGone = true): string[] {
  const bad: string[] = [];
  const open = new Map<string, number>(), idle = new Map<string, number>();
  for (const s of samples(text)) {
    switch (s.name) {
      case "expressgateway_in_flight_requests":
      case "expressgateway_backend_in_flight":
      case "expressgateway_tunnels_active":
        if (s.value !== 0) bad.push(`${s.name}${s.labels} = ${s.value}`);
        break;
      case "expressgateway_connections_active":
      case "expressgateway_l4_sessions_active":
      case "expressgateway_quic_raw_proxy_connections_active":
        if (clientsGone && s.value !== 0) bad.push(`${s.name}${s.labels} = ${s.value}`);
        break;
      case "expressgateway_upstream_connections": {
        const key = s.labels.replace(/,?state="[a-z]+"/, "");
        (s.labels.includes('state="idle"') ? idle : open).set(key, s.value);
        break;
      }
    }
  }
  for (const [key, n] of open) {
    const free = idle.get(key) ?? 0;
    if (n !== free) bad.push(`expressgateway_upstream_connections${key}: ${n} open, ${free} idle`);
  }
  return bad;
}

/** Waits (bounded) until the gateway's books balance; throws with what does not, if they never do. */
export async function assertSettled(gw: GatewayProcess, opts: SettledOptions = {}): Promise<void> {
  const deadline = Date.now() + (opts.timeoutMs ?? 5000);
  let bad: string[] = [];
  while (Date.now() < deadline) {
    const text = await (await fetch(gw.admin("/metrics"))).text();
    bad = unbalanced(text, opts.clientsGone ?? true);
    if (bad.length === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`the gateway's books do not balance after its traffic ended:\n  ${bad.join("\n  ")}`);
}
