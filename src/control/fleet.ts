/**
 * Fleet registration and the fleet view. Each gateway keeps one key,
 * `<prefix>/instances/<id>`, attached to a lease it renews every third of the TTL; the value
 * is JSON saying which config revision it applied. A gateway that stops cleanly revokes the
 * lease (its key vanishes at once); one that dies or hangs vanishes when the lease expires.
 * `expressgateway fleet` reads the instance keys and the config key and marks each instance
 * current, behind or rejected (it holds its last good config because the newest is invalid).
 */

import type { Logger } from "../observability/log.ts";
import { type EtcdClient, EtcdUnavailableError } from "./etcd_client.ts";
import { sleep } from "./source.ts";

export interface InstanceRecord {
  id: string;
  /** mod_revision of the config document this instance serves (from etcd or its cache). */
  applied_revision: number;
  /** sha256 of that document's text. */
  digest: string;
  started_at: string;
  version: string;
  /** Where the served document came from: "etcd", or "cache" when booted while etcd was down. */
  origin: "etcd" | "cache";
  /** The newest revision it refused (invalid), if any, and why. */
  rejected_revision?: number;
  rejected_error?: string;
  /** Changes in the applied revision that wait for a restart (listener binds, workers…). */
  restart_required?: string[];
  hostname?: string;
  pid?: number;
  updated_at?: string;
}

export function instancesPrefix(prefix: string): string {
  return `${prefix}/instances/`;
}

export function configKey(prefix: string): string {
  return `${prefix}/config`;
}

/** Keeps this instance's leased key alive and current. Never throws; logs outages once. */
export class Registrar {
  #record: InstanceRecord;
  #lease: string | undefined;
  #dirty = true;
  #stopped = new AbortController();
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #failing = false;

  constructor(
    readonly client: EtcdClient,
    readonly prefix: string,
    record: InstanceRecord,
    readonly ttlSeconds: number,
    readonly log: Logger,
  ) {
    this.#record = record;
  }

  get key(): string {
    return instancesPrefix(this.prefix) + this.#record.id;
  }

  get record(): InstanceRecord {
    return this.#record;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** New facts (applied revision…): written at once if etcd is up, else on reconnect. */
  update(patch: Partial<InstanceRecord>): void {
    this.#record = { ...this.#record, ...patch };
    this.#dirty = true;
    this.#wake?.();
  }

  async stop(): Promise<void> {
    this.#stopped.abort();
    this.#wake?.();
    await this.#loop;
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease) {
      // Withdraw at once rather than leaving a stale entry for a whole TTL.
      await this.client.leaseRevoke(lease).catch((e) => {
        this.log.debug("lease revoke failed; the entry expires with its TTL", { error: String(e) });
      });
    }
  }

  async #run(): Promise<void> {
    const period = Math.max(500, Math.floor((this.ttlSeconds * 1000) / 3));
    let nextKeepAlive = 0;
    while (!this.#stopped.signal.aborted) {
      try {
        if (!this.#lease) {
          this.#lease = (await this.client.leaseGrant(this.ttlSeconds)).id;
          this.#dirty = true;
          nextKeepAlive = Date.now() + period;
        }
        if (Date.now() >= nextKeepAlive) {
          const ttl = await this.client.leaseKeepAlive(this.#lease);
          nextKeepAlive = Date.now() + period;
          if (ttl <= 0) {
            // Expired while we could not reach etcd (or etcd lost it): register afresh.
            this.log.info("fleet lease expired; registering again", { id: this.#record.id });
            this.#lease = undefined;
            continue;
          }
        }
        if (this.#dirty) {
          this.#dirty = false;
          const value = JSON.stringify({ ...this.#record, updated_at: new Date().toISOString() });
          await this.client.put(this.key, value, { lease: this.#lease });
        }
        if (this.#failing) {
          this.#failing = false;
          this.log.info("fleet registration restored", { key: this.key });
        }
      } catch (e) {
        this.#dirty = true;
        if (/lease not found/i.test(String((e as Error)?.message))) this.#lease = undefined;
        if (!this.#failing) {
          this.#failing = true;
          this.log.warn("fleet registration failing; retrying", {
            key: this.key,
            error: (e as Error)?.message ?? String(e),
          });
        }
        nextKeepAlive = 0;
        await sleep(e instanceof EtcdUnavailableError ? 1000 : 2000, this.#stopped.signal);
        continue;
      }
      // Sleep until the next keepalive or an update, whichever comes first.
      if (this.#dirty) continue; // updated while the last write was in flight
      const wake = new AbortController();
      this.#wake = () => wake.abort();
      await sleep(
        Math.max(0, nextKeepAlive - Date.now()),
        AbortSignal.any([wake.signal, this.#stopped.signal]),
      );
      this.#wake = undefined;
    }
  }
}

export type InstanceStatus = "current" | "behind" | "rejected";

export interface FleetView {
  /** mod_revision of `<prefix>/config` (0: no config pushed yet). */
  configRevision: number;
  configDigest: string;
  instances: Array<InstanceRecord & { status: InstanceStatus }>;
}

export async function sha256Hex(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** current: serves the document now in etcd; rejected: refused it as invalid; behind: anything else. */
export function instanceStatus(
  r: InstanceRecord,
  configRevision: number,
  configDigest: string,
): InstanceStatus {
  if (r.applied_revision === configRevision || (configDigest !== "" && r.digest === configDigest)) {
    return "current";
  }
  if (r.rejected_revision === configRevision) return "rejected";
  return "behind";
}

export async function readFleet(client: EtcdClient, prefix: string): Promise<FleetView> {
  const cfg = await client.get(configKey(prefix));
  const configDigest = cfg.value === undefined ? "" : await sha256Hex(cfg.value);
  const range = await client.range(instancesPrefix(prefix), { prefix: true });
  const instances: FleetView["instances"] = [];
  for (const kv of range.kvs) {
    let r: InstanceRecord;
    try {
      r = JSON.parse(kv.value);
      if (typeof r !== "object" || r === null || typeof r.id !== "string") throw new Error("shape");
    } catch {
      // Someone else's key under our prefix: show it rather than hide it.
      r = {
        id: kv.key.slice(instancesPrefix(prefix).length),
        applied_revision: 0,
        digest: "",
        started_at: "",
        version: "?",
        origin: "etcd",
        rejected_error: "unreadable registration value",
      };
    }
    instances.push({ ...r, status: instanceStatus(r, cfg.modRevision, configDigest) });
  }
  instances.sort((a, b) => a.id.localeCompare(b.id));
  return { configRevision: cfg.modRevision, configDigest, instances };
}

export function formatFleet(v: FleetView): string {
  const lines = [
    `config revision ${v.configRevision}${
      v.configDigest ? ` (sha256 ${v.configDigest.slice(0, 12)})` : ""
    }, ${v.instances.length} instance(s)`,
  ];
  const rows = [["ID", "STATUS", "REVISION", "DIGEST", "ORIGIN", "VERSION", "STARTED", "NOTE"]];
  for (const i of v.instances) {
    rows.push([
      i.id,
      i.status,
      String(i.applied_revision),
      i.digest.slice(0, 12),
      i.origin,
      i.version,
      i.started_at,
      [
        i.rejected_revision ? `refused revision ${i.rejected_revision}: ${i.rejected_error ?? ""}` : "",
        i.restart_required?.length ? `restart needed for: ${i.restart_required.join("; ")}` : "",
      ].filter((n) => n).join("; "),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) lines.push(r.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd());
  return lines.join("\n");
}
