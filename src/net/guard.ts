/**
 * Connection admission: per-listener and per-client-IP caps, checked at accept before any
 * byte is read, so a flood of connections from one address cannot starve the rest. Counts
 * live in SharedCounters, so the caps hold across every data-plane worker of the process.
 */

import type { SharedCounters } from "../runtime/shared_counters.ts";

export type GuardRejection = "listener_cap" | "per_ip_cap";

export class ConnectionGuard {
  constructor(
    private readonly counters: SharedCounters,
    /** This listener's slot in the shared table (its index in the config). */
    private readonly slot: number,
    public maxConnections: number,
    public maxPerIp: number,
  ) {}

  /** Connections open on this listener across all workers. */
  get total(): number {
    return this.counters.listenerConnections(this.slot);
  }

  /** Admits a connection or says why not. A successful admit must be paired with release(). */
  admit(ip: string): GuardRejection | undefined {
    if (!this.counters.takeListener(this.slot, this.maxConnections)) return "listener_cap";
    if (!this.counters.takeIp(ip, this.maxPerIp)) {
      this.counters.releaseListener(this.slot);
      return "per_ip_cap";
    }
    return undefined;
  }

  release(ip: string): void {
    this.counters.releaseIp(ip);
    this.counters.releaseListener(this.slot);
  }
}
