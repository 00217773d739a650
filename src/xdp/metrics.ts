/**
 * Metric families of the XDP fast path. The kernel keeps the counters (per-CPU maps); on every
 * scrape the controller reads and sums them and this module mirrors the totals into the
 * registry's counters (set, not incremented: the maps are the source of truth and only grow
 * while the program is loaded). Backend series are removed when a reload drops the backend.
 */

import type { Counter, Gauge, Registry } from "../observability/metrics.ts";
import type { StatName } from "./layout.ts";

const P = "expressgateway_xdp_";

/** Stat → (family, label value). Every enum eg_stat entry appears exactly once. */
const GLOBAL: Record<
  StatName,
  [family: "packets" | "bytes" | "newFlows" | "forwarded" | "passed" | "drops", label: string]
> = {
  VIP_PACKETS: ["packets", "to_backend"],
  VIP_BYTES: ["bytes", "to_backend"],
  REPLY_PACKETS: ["packets", "to_client"],
  REPLY_BYTES: ["bytes", "to_client"],
  NEW_FLOWS: ["newFlows", ""],
  FWD_REDIRECT: ["forwarded", "redirect"],
  FWD_TX: ["forwarded", "tx"],
  KERNEL_NO_NEIGH: ["forwarded", "kernel_no_neighbour"],
  KERNEL_MTU: ["forwarded", "kernel_mtu"],
  KERNEL_OTHER: ["forwarded", "kernel_route"],
  PASS_NOT_IPV4: ["passed", "not_ipv4"],
  PASS_IP_OPTIONS: ["passed", "ip_options"],
  PASS_FRAGMENT: ["passed", "fragment"],
  PASS_MALFORMED: ["passed", "malformed"],
  PASS_TTL: ["passed", "ttl"],
  PASS_NOT_OURS: ["passed", "not_ours"],
  DROP_RATE_LIMITED: ["drops", "rate_limited"],
  DROP_NO_BACKEND: ["drops", "no_backend"],
};

export interface BackendCounters {
  key: string;
  packets: number;
  bytes: number;
  newFlows: number;
  replyPackets: number;
  replyBytes: number;
}

export interface XdpStats {
  global: Record<StatName, number>;
  backends: BackendCounters[];
}

export class XdpMetrics {
  readonly packets: Counter;
  readonly bytes: Counter;
  readonly newFlows: Counter;
  readonly forwarded: Counter;
  readonly passed: Counter;
  readonly drops: Counter;
  readonly backendPackets: Counter;
  readonly backendBytes: Counter;
  readonly backendNewFlows: Counter;
  readonly attached: Gauge;
  readonly backends: Gauge;
  readonly tableUpdates: Counter;

  constructor(r: Registry) {
    this.packets = r.counter(`${P}packets_total`, "Packets rewritten by the XDP program, by direction.", [
      "direction",
    ]);
    this.bytes = r.counter(
      `${P}bytes_total`,
      "Bytes (whole frames) rewritten by the XDP program, by direction.",
      [
        "direction",
      ],
    );
    this.newFlows = r.counter(`${P}new_flows_total`, "Flows the XDP program pinned to a backend.");
    this.forwarded = r.counter(
      `${P}forwarded_total`,
      "Rewritten packets by how they left: redirect, tx, or handed to the kernel (kernel_*).",
      ["via"],
    );
    this.passed = r.counter(`${P}passed_total`, "Packets left untouched for the kernel, by reason.", [
      "reason",
    ]);
    this.drops = r.counter(`${P}drops_total`, "Packets the XDP program dropped, by reason.", ["reason"]);
    this.backendPackets = r.counter(`${P}backend_packets_total`, "XDP packets per backend and direction.", [
      "backend",
      "direction",
    ]);
    this.backendBytes = r.counter(`${P}backend_bytes_total`, "XDP bytes per backend and direction.", [
      "backend",
      "direction",
    ]);
    this.backendNewFlows = r.counter(`${P}backend_new_flows_total`, "Flows pinned to each backend.", [
      "backend",
    ]);
    this.attached = r.gauge(`${P}attached`, "1 while the XDP program is attached to the interface.", [
      "interface",
      "mode",
    ]);
    this.backends = r.gauge(`${P}backends`, "Backends in the live Maglev table.");
    this.tableUpdates = r.counter(`${P}table_updates_total`, "Maglev table generations published.");
    // Every label value exists from the start, so a zero is a sample, not an absence.
    for (const [family, label] of Object.values(GLOBAL)) this.#child(family, label);
  }

  #child(family: (typeof GLOBAL)[StatName][0], label: string) {
    return family === "newFlows" ? this.newFlows.with() : this[family].with(label);
  }

  /** Mirrors kernel totals into the registry. */
  set(stats: XdpStats): void {
    for (const name of Object.keys(GLOBAL) as StatName[]) {
      const [family, label] = GLOBAL[name];
      this.#child(family, label).value = stats.global[name];
    }
    for (const b of stats.backends) {
      this.backendPackets.with(b.key, "to_backend").value = b.packets;
      this.backendPackets.with(b.key, "to_client").value = b.replyPackets;
      this.backendBytes.with(b.key, "to_backend").value = b.bytes;
      this.backendBytes.with(b.key, "to_client").value = b.replyBytes;
      this.backendNewFlows.with(b.key).value = b.newFlows;
    }
  }

  removeBackend(key: string): void {
    this.backendPackets.removeMatching({ backend: key });
    this.backendBytes.removeMatching({ backend: key });
    this.backendNewFlows.remove(key);
  }
}
