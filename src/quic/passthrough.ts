/**
 * QUIC Mode A passthrough: relays QUIC datagrams to a pool of QUIC servers, routed by
 * Connection ID, without decrypting anything. The gateway holds no TLS state and no
 * certificate; the backends terminate QUIC (docs/QUIC_PASSTHROUGH.md).
 *
 * A flow is one QUIC connection pinned to one backend. It is found, for a datagram from a
 * client, by (in order):
 *   1. its Destination Connection ID: the client's first DCID (learned from its Initial), and
 *      every Source CID the backend put in its long-header packets (Initial, Handshake, Retry),
 *      which is what the client's later short-header packets carry (`server_cid_length` bytes);
 *   2. the client's address, for packets whose CID we never saw (e.g. one issued in an
 *      encrypted NEW_CONNECTION_ID frame); that CID is then learned for the flow.
 * A datagram that matches by CID from a new address is a migrated client (or a NAT rebinding):
 * replies follow it. A new Initial (unknown DCID) starts a flow on the backend Maglev picks
 * for its DCID (eg_hash32 of the CID bytes, table keyed by backend "host:port"), so the fast
 * path in C could pick the same one. Established flows never consult Maglev again, so backends
 * joining or leaving the pool move no live connection.
 *
 * Each flow sends from its own ephemeral socket, so the backend's replies arrive already
 * sorted by flow and go back out of the listener socket, from the address the client used.
 * The table is bounded: max_flows flows, a few CIDs and addresses each, idle expiry.
 */

import { maglevTable } from "../balancer/maglev.ts";
import type { PassthroughConfig } from "../config/types.ts";
import { parseHostPort } from "../config/units.ts";
import type { ProxyContext } from "../http/proxy.ts";
import { type Deadline, sweeper } from "../net/deadlines.ts";
import { BindError } from "../net/listener.ts";
import type { Logger } from "../observability/log.ts";
import type { Counter, Gauge, Registry } from "../observability/metrics.ts";
import type { BackendRuntime, PoolRuntime } from "../runtime/backends.ts";
import { cidKey, hashBytes, MIN_INITIAL_DATAGRAM, MIN_INITIAL_DCID, parseHeader } from "./packet.ts";

const MAX_DATAGRAM = 65535;
/**
 * Receive buffer of each flow's upstream socket: a jumbo frame. QUIC datagrams are never
 * fragmented (RFC 9000 §14), so they fit a path MTU; a per-flow 64 KiB buffer would cost
 * 640 MiB at 10,000 flows. A datagram that fills it may have been cut: dropped (oversize).
 */
const FLOW_DATAGRAM = 9216;
/** CIDs remembered per flow (oldest forgotten first): a server rarely has more than a few live. */
const MAX_CIDS_PER_FLOW = 8;
/** Client addresses remembered per flow (a migration adds one; the oldest is forgotten). */
const MAX_ADDRS_PER_FLOW = 4;
const P = "expressgateway_quic_passthrough_";

export interface PassthroughMetrics {
  flows: Gauge;
  packets: Counter;
  bytes: Counter;
  drops: Counter;
  migrations: Counter;
  tableEntries: Gauge;
}

export function passthroughMetrics(r: Registry): PassthroughMetrics {
  return {
    flows: r.gauge(`${P}flows`, "QUIC connections (flows) relayed now."),
    packets: r.counter(`${P}datagrams_total`, "Datagrams relayed, by direction.", ["direction"]),
    bytes: r.counter(`${P}bytes_total`, "UDP payload bytes relayed, by direction.", ["direction"]),
    drops: r.counter(
      `${P}drops_total`,
      "Datagrams dropped: unknown_cid, malformed, short_initial, flow_cap, no_backend, draining, send_failed, foreign_source, oversize.",
      ["reason"],
    ),
    migrations: r.counter(`${P}migrations_total`, "Flows whose client address changed (same connection ID)."),
    tableEntries: r.gauge(`${P}table_entries`, "Entries of the flow table, by key kind (cid, address).", [
      "kind",
    ]),
  };
}

export const UP = "client_to_backend";
export const DOWN = "backend_to_client";

class Flow implements Deadline {
  deadline = Infinity;
  reason = "idle";
  closed = false;
  readonly cids: string[] = [];
  readonly addrs: string[] = [];

  constructor(
    public client: Deno.NetAddr,
    readonly upstream: Deno.DatagramConn,
    readonly backend: Deno.NetAddr,
    readonly backendRt: BackendRuntime,
    private readonly owner: QuicPassthrough,
  ) {}

  onExpire(): void {
    this.owner.endFlow(this);
  }
}

interface MaglevView {
  pool: PoolRuntime;
  backends: BackendRuntime[];
  table: Int32Array;
}

export class QuicPassthrough {
  readonly #socket: Deno.DatagramConn;
  readonly #byCid = new Map<string, Flow>();
  readonly #byAddr = new Map<string, Flow>();
  readonly #flows = new Set<Flow>();
  /** Short-header DCID lengths to try: server_cid_length first, then lengths backends were seen using. */
  #cidLengths: number[];
  #maglev: MaglevView | undefined;
  #closed = false;
  /** Set by a drain: live flows keep relaying, new connections are refused. */
  draining = false;
  readonly #warned = new Set<string>();

  private constructor(
    public cfg: PassthroughConfig,
    socket: Deno.DatagramConn,
    private readonly ctx: ProxyContext,
    readonly metrics: PassthroughMetrics,
    private readonly log: Logger,
  ) {
    this.#socket = socket;
    this.#cidLengths = [cfg.server_cid_length];
  }

  static bind(
    cfg: PassthroughConfig,
    ctx: ProxyContext,
    metrics: PassthroughMetrics,
    log: Logger,
  ): QuicPassthrough {
    const addr = parseHostPort(cfg.bind)!;
    try {
      const socket = Deno.listenDatagram({ transport: "udp", hostname: addr.host, port: addr.port });
      return new QuicPassthrough(cfg, socket, ctx, metrics, log);
    } catch (e) {
      throw new BindError("passthrough", cfg.bind, e);
    }
  }

  get port(): number {
    return (this.#socket.addr as Deno.NetAddr).port;
  }

  get flowCount(): number {
    return this.#flows.size;
  }

  /** A reload: new limits and pool apply to new flows; live flows keep their backend. */
  reconfigure(cfg: PassthroughConfig): void {
    this.cfg = cfg;
    this.#cidLengths = [
      cfg.server_cid_length,
      ...this.#cidLengths.filter((l) => l !== cfg.server_cid_length),
    ];
  }

  start(): void {
    this.#receiveLoop();
  }

  /** Gauges that are cheaper to read at scrape time than to keep in step. */
  refreshGauges(): void {
    this.metrics.flows.set(this.#flows.size);
    this.metrics.tableEntries.with("cid").set(this.#byCid.size);
    this.metrics.tableEntries.with("address").set(this.#byAddr.size);
  }

  async #receiveLoop(): Promise<void> {
    const buf = new Uint8Array(MAX_DATAGRAM);
    for (;;) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await this.#socket.receive(buf);
      } catch (e) {
        if (this.#closed) return;
        this.log.warn("quic passthrough receive failed", { error: String(e) });
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      try {
        // receive() returns a view of buf; the send below is asynchronous, so it gets a copy.
        this.#fromClient(data.slice(), from as Deno.NetAddr);
      } catch (e) {
        // Defensive: routing must never end the loop (parseHeader itself does not throw).
        this.metrics.drops.with("malformed").inc();
        this.log.debug("quic passthrough: datagram dropped", { error: String(e) });
      }
    }
  }

  #fromClient(data: Uint8Array, client: Deno.NetAddr): void {
    const h = parseHeader(data, this.cfg.server_cid_length);
    if (!h.ok) {
      this.metrics.drops.with("malformed").inc();
      return;
    }
    const addrKey = `${client.hostname}:${client.port}`;
    let flow: Flow | undefined;
    let byCid = false;
    if (h.long) {
      flow = this.#byCid.get(cidKey(h.dcid));
    } else {
      for (const len of this.#cidLengths) {
        if (data.length < 1 + len) continue;
        flow = this.#byCid.get(cidKey(data.subarray(1, 1 + len)));
        if (flow) break;
      }
    }
    if (flow) byCid = true;
    else if (h.kind !== "initial" && h.kind !== "long_unknown") {
      // A CID we never saw from an address we know: the client switched to a CID the backend
      // issued inside the encrypted connection; learn it so a later migration still routes.
      flow = this.#byAddr.get(addrKey);
      if (flow && h.dcid.length > 0) this.#learnCid(flow, cidKey(h.dcid));
    }
    if (!flow) {
      if (h.kind !== "initial" && h.kind !== "long_unknown") {
        this.metrics.drops.with("unknown_cid").inc();
        return;
      }
      // A new connection attempt. RFC 9000 §14.1: an Initial (and a probe of an unknown
      // version) comes in a datagram of ≥ 1200 bytes; smaller ones would only cost table space.
      if (data.length < MIN_INITIAL_DATAGRAM || (h.kind === "initial" && h.dcid.length < MIN_INITIAL_DCID)) {
        this.metrics.drops.with("short_initial").inc();
        return;
      }
      if (this.draining) {
        this.metrics.drops.with("draining").inc();
        return;
      }
      if (this.#flows.size >= this.cfg.max_flows) {
        this.metrics.drops.with("flow_cap").inc();
        return;
      }
      flow = this.#newFlow(h.dcid, client);
      if (!flow) return;
      this.#learnCid(flow, cidKey(h.dcid));
      this.#learnAddr(flow, addrKey);
    } else if (flow.client.port !== client.port || flow.client.hostname !== client.hostname) {
      if (byCid) {
        // Same connection, new path: a migration or NAT rebinding. The backend validates the
        // path (RFC 9000 §9); the relay only has to follow it.
        flow.client = client;
        this.#learnAddr(flow, addrKey);
        this.metrics.migrations.inc();
      }
    }
    flow.deadline = performance.now() + this.cfg.idle_timeout;
    const f = flow;
    f.upstream.send(data, f.backend).then(
      () => {
        this.metrics.packets.with(UP).inc();
        this.metrics.bytes.with(UP).inc(data.length);
      },
      () => this.metrics.drops.with("send_failed").inc(),
    );
  }

  #pool(): MaglevView | undefined {
    const pool = this.ctx.state().pools.get(this.cfg.pool);
    if (!pool) return undefined;
    if (this.#maglev?.pool === pool) return this.#maglev;
    const backends = [...pool.backends.values()].filter((b) => b.config.weight > 0);
    const table = maglevTable(
      backends.map((b) => b.config.address),
      backends.map((b) => b.config.weight),
      pool.config.maglev_table_size,
    );
    this.#maglev = { pool, backends, table };
    return this.#maglev;
  }

  /** Maglev slot of the DCID; an unhealthy backend's slots fall to the next healthy one. */
  #pick(dcid: Uint8Array): BackendRuntime | undefined {
    const view = this.#pool();
    if (!view || view.backends.length === 0) return undefined;
    const { table, backends } = view;
    const start = hashBytes(dcid, 0) % table.length;
    const first = backends[table[start]];
    if (this.ctx.health.isHealthy(first.key)) return first;
    const limit = Math.min(table.length, 16 * backends.length);
    for (let i = 1; i < limit; i++) {
      const b = backends[table[(start + i) % table.length]];
      if (this.ctx.health.isHealthy(b.key)) return b;
    }
    return first; // every backend down: keep the Maglev choice (panic mode, as the pools do)
  }

  #newFlow(dcid: Uint8Array, client: Deno.NetAddr): Flow | undefined {
    const b = this.#pick(dcid);
    const hp = b && parseHostPort(b.config.address);
    if (!b || !hp) {
      this.metrics.drops.with("no_backend").inc();
      return undefined;
    }
    let upstream: Deno.DatagramConn;
    try {
      upstream = Deno.listenDatagram({
        transport: "udp",
        hostname: hp.host.includes(":") ? "::" : "0.0.0.0",
        port: 0,
      });
    } catch (e) {
      this.metrics.drops.with("send_failed").inc();
      this.log.warn("quic passthrough: cannot open an upstream socket", { error: String(e) });
      return undefined;
    }
    const flow = new Flow(client, upstream, { transport: "udp", hostname: hp.host, port: hp.port }, b, this);
    this.#flows.add(flow);
    sweeper.add(flow);
    b.stats.inFlight++;
    this.#replyLoop(flow);
    return flow;
  }

  #learnCid(flow: Flow, key: string): void {
    if (key === "" || flow.closed) return;
    const owner = this.#byCid.get(key);
    if (owner === flow) return;
    if (owner) owner.cids.splice(owner.cids.indexOf(key), 1); // the backend reused it: the newest wins
    this.#byCid.set(key, flow);
    flow.cids.push(key);
    if (flow.cids.length > MAX_CIDS_PER_FLOW) {
      const old = flow.cids.shift()!;
      if (this.#byCid.get(old) === flow) this.#byCid.delete(old);
    }
  }

  #learnAddr(flow: Flow, key: string): void {
    const owner = this.#byAddr.get(key);
    if (owner === flow) return;
    if (owner) owner.addrs.splice(owner.addrs.indexOf(key), 1);
    this.#byAddr.set(key, flow);
    flow.addrs.push(key);
    if (flow.addrs.length > MAX_ADDRS_PER_FLOW) {
      const old = flow.addrs.shift()!;
      if (this.#byAddr.get(old) === flow) this.#byAddr.delete(old);
    }
  }

  /** Backend → client, from the listener socket, learning the backend's CIDs on the way. */
  async #replyLoop(flow: Flow): Promise<void> {
    const buf = new Uint8Array(FLOW_DATAGRAM);
    try {
      for (;;) {
        const [view, from] = await flow.upstream.receive(buf);
        const f = from as Deno.NetAddr;
        if (f.port !== flow.backend.port) {
          this.metrics.drops.with("foreign_source").inc(); // only the chosen backend answers a flow
          continue;
        }
        if (view.length >= FLOW_DATAGRAM) {
          this.metrics.drops.with("oversize").inc();
          continue;
        }
        flow.deadline = performance.now() + this.cfg.idle_timeout;
        if (view.length > 0 && (view[0] & 0x80) !== 0) this.#learnFromBackend(flow, view);
        const data = view.slice();
        try {
          await this.#socket.send(data, flow.client);
          this.metrics.packets.with(DOWN).inc();
          this.metrics.bytes.with(DOWN).inc(data.length);
        } catch {
          if (this.#closed) return;
          this.metrics.drops.with("send_failed").inc();
        }
      }
    } catch {
      // the flow's socket was closed (idle expiry or shutdown)
    } finally {
      this.endFlow(flow);
    }
  }

  /** Long headers from the backend carry its chosen CID as Source CID (Initial, Handshake, Retry). */
  #learnFromBackend(flow: Flow, data: Uint8Array): void {
    // Coalesced packets (RFC 9000 §12.2) share the CIDs, so the first header is enough.
    const h = parseHeader(data, this.cfg.server_cid_length);
    if (!h.ok || !h.scid || h.scid.length === 0) return;
    if (h.kind === "version_negotiation") return; // its SCID only echoes the client's DCID
    this.#learnCid(flow, cidKey(h.scid));
    const len = h.scid.length;
    if (!this.#cidLengths.includes(len)) {
      this.#cidLengths.push(len);
      if (!this.#warned.has(`len${len}`)) {
        this.#warned.add(`len${len}`);
        this.log.warn("quic passthrough: backend chose a connection ID of another length", {
          backend: flow.backendRt.config.address,
          length: len,
          server_cid_length: this.cfg.server_cid_length,
          hint: "set [passthrough] server_cid_length to the length your QUIC servers use",
        });
      }
    }
  }

  endFlow(flow: Flow): void {
    if (flow.closed) return;
    flow.closed = true;
    sweeper.delete(flow);
    this.#flows.delete(flow);
    for (const k of flow.cids) if (this.#byCid.get(k) === flow) this.#byCid.delete(k);
    for (const k of flow.addrs) if (this.#byAddr.get(k) === flow) this.#byAddr.delete(k);
    flow.backendRt.stats.inFlight--;
    try {
      flow.upstream.close();
    } catch { /* already closed */ }
  }

  close(): void {
    this.#closed = true;
    try {
      this.#socket.close();
    } catch { /* already closed */ }
    for (const f of [...this.#flows]) this.endFlow(f);
  }
}
