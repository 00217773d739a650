/**
 * Connection admission: per-listener and per-client-IP caps, checked at accept before any
 * byte is read, so a flood of connections from one address cannot starve the rest.
 */

export type GuardRejection = "listener_cap" | "per_ip_cap";

export class ConnectionGuard {
  #total = 0;
  readonly #perIp = new Map<string, number>();

  constructor(public maxConnections: number, public maxPerIp: number) {}

  get total(): number {
    return this.#total;
  }

  /** Admits a connection or says why not. A successful admit must be paired with release(). */
  admit(ip: string): GuardRejection | undefined {
    if (this.#total >= this.maxConnections) return "listener_cap";
    const n = this.#perIp.get(ip) ?? 0;
    if (n >= this.maxPerIp) return "per_ip_cap";
    this.#perIp.set(ip, n + 1);
    this.#total++;
    return undefined;
  }

  release(ip: string): void {
    const n = this.#perIp.get(ip) ?? 0;
    if (n <= 1) this.#perIp.delete(ip);
    else this.#perIp.set(ip, n - 1);
    this.#total--;
  }
}
