/**
 * The XDP controller: owns the loaded program (bpf/xdp_lb.o) and its maps for the life of the
 * process. Start order is load → fill every map → attach, so the program is never attached
 * half-configured; attachment is an unpinned bpf_link per interface, so if the process dies
 * for any reason the kernel detaches the program with the fd (docs/XDP.md explains the choice).
 *
 * Backend changes (SIGHUP) never detach: the maps hold two generations of (backends, Maglev
 * table); the controller fills the idle one, then flips `active` in eg_config. Flows already
 * pinned in the LRU flow table keep their backend; new flows use the new table.
 *
 * Needs --allow-ffi. Imported only through a dynamic import when XDP is enabled.
 */

import {
  BpfError,
  type BpfObject,
  EBUSY,
  EOPNOTSUPP,
  EPERM,
  Libbpf,
  XDP_FLAGS_DRV_MODE,
  XDP_FLAGS_SKB_MODE,
} from "../../ffi/libbpf.ts";
import { maglevTable } from "../balancer/maglev.ts";
import type { Registry } from "../observability/metrics.ts";
import {
  BACKEND,
  BACKEND_STATS,
  type ConfigValue,
  decodeBackend,
  EG_MAX_BACKENDS,
  EG_PROTO_TCP,
  EG_PROTO_UDP,
  encodeBackend,
  encodeConfig,
  encodeFlowKey,
  type FlowTuple,
  perCpuSlot,
  STAT_COUNT,
  STAT_NAMES,
  type StatName,
  STATS_SIZE,
  sumPerCpu,
  u32le,
} from "./layout.ts";
import { type BackendCounters, XdpMetrics, type XdpStats } from "./metrics.ts";
import {
  resolveBackends,
  type ResolvedBackend,
  type ResolvedXdpOptions,
  resolveXdpOptions,
  restartOnlyChanges,
  XdpConfigError,
  type XdpMode,
  type XdpOptions,
} from "./options.ts";

export type { XdpOptions, XdpStats };

/** A startup failure with an operator-facing message; `kind` lets callers and tests tell them apart. */
export class XdpStartError extends Error {
  constructor(
    readonly kind:
      | "config"
      | "libbpf"
      | "interface"
      | "permission"
      | "object"
      | "native_refused"
      | "busy"
      | "attach",
    message: string,
    override readonly cause?: unknown,
  ) {
    super(message);
    this.name = "XdpStartError";
  }
}

export interface XdpLogger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface Attachment {
  interface: string;
  ifindex: number;
  mode: XdpMode;
  linkFd: number;
}

const MAP_NAMES = [
  "eg_config",
  "eg_backends",
  "eg_table",
  "eg_flows",
  "eg_replies",
  "eg_stats",
  "eg_be_stats",
] as const;
type MapFds = Record<(typeof MAP_NAMES)[number], number>;

export class XdpController {
  readonly #lib: Libbpf;
  readonly #obj: BpfObject;
  readonly #fd: MapFds;
  readonly #nCpus: number;
  readonly #metrics: XdpMetrics | null;
  readonly #log: XdpLogger | null;
  #opts: ResolvedXdpOptions;
  #active: 0 | 1 = 0;
  /** False until the first generation is written (it goes to generation 0). */
  #published = false;
  #tableSize: [number, number] = [0, 0];
  #backendCount: [number, number] = [0, 0];
  #live: ResolvedBackend[] = [];
  #attachments: Attachment[] = [];
  #closed = false;

  private constructor(
    lib: Libbpf,
    obj: BpfObject,
    opts: ResolvedXdpOptions,
    registry: Registry | null,
    log: XdpLogger | null,
  ) {
    this.#lib = lib;
    this.#obj = obj;
    this.#opts = opts;
    this.#log = log;
    this.#nCpus = lib.numPossibleCpus();
    this.#fd = Object.fromEntries(MAP_NAMES.map((n) => [n, obj.mapFd(n)])) as MapFds;
    this.#metrics = registry ? new XdpMetrics(registry) : null;
    if (registry) {
      registry.onCollect(() => {
        if (!this.#closed) this.#metrics!.set(this.stats());
      });
    }
  }

  /**
   * Loads, configures and attaches. Throws XdpStartError (with `kind`) on any failure, after
   * undoing whatever was done: no program stays attached, no object stays loaded.
   */
  static start(options: XdpOptions, deps: { registry?: Registry; log?: XdpLogger } = {}): XdpController {
    let opts: ResolvedXdpOptions;
    try {
      opts = resolveXdpOptions(options);
    } catch (e) {
      throw new XdpStartError("config", (e as Error).message, e);
    }
    let lib: Libbpf;
    try {
      lib = Libbpf.open(opts.libbpfPath);
    } catch (e) {
      throw new XdpStartError("libbpf", (e as Error).message, e);
    }
    // Interfaces first: the cheapest check, and the most common mistake.
    const ifindexes = opts.interfaces.map((name) => {
      const idx = lib.ifNameToIndex(name);
      if (idx === 0) {
        throw new XdpStartError(
          "interface",
          `XDP interface '${name}' does not exist (in this network namespace)`,
        );
      }
      return idx;
    });

    let obj: BpfObject;
    try {
      obj = lib.openObject(opts.objectPath);
    } catch (e) {
      throw new XdpStartError(
        "object",
        `cannot open the XDP program ${opts.objectPath} (build it with scripts/build-bpf.sh): ${
          (e as Error).message
        }`,
        e,
      );
    }
    let ctl: XdpController | null = null;
    try {
      obj.setMaxEntries("eg_table", 2 * opts.tableSize);
      obj.setMaxEntries("eg_flows", opts.flowTableSize);
      obj.setMaxEntries("eg_replies", opts.flowTableSize);
      try {
        lib.loadObject(obj);
      } catch (e) {
        if (e instanceof BpfError && e.errno === EPERM) {
          throw new XdpStartError(
            "permission",
            "loading the XDP program was refused (EPERM): run as root or grant CAP_BPF, CAP_NET_ADMIN " +
              "and CAP_PERFMON",
            e,
          );
        }
        throw new XdpStartError(
          "object",
          `the kernel rejected ${opts.objectPath}: ${(e as Error).message}`,
          e,
        );
      }
      ctl = new XdpController(lib, obj, opts, deps.registry ?? null, deps.log ?? null);
      ctl.#configure(opts, opts.backends);
      ctl.#attachAll(ifindexes);
      deps.log?.info("xdp attached", {
        interfaces: ctl.#attachments.map((a) => `${a.interface}:${a.mode}`).join(","),
        vip: `${opts.vip}:${opts.port}`,
        protocol: opts.protocol,
        backends: opts.backends.length,
      });
      return ctl;
    } catch (e) {
      if (ctl) ctl.close();
      else obj.close();
      throw e;
    }
  }

  get options(): ResolvedXdpOptions {
    return this.#opts;
  }

  get attachments(): readonly Omit<Attachment, "linkFd">[] {
    return this.#attachments.map(({ interface: i, ifindex, mode }) => ({ interface: i, ifindex, mode }));
  }

  get backends(): readonly ResolvedBackend[] {
    return this.#live;
  }

  #attachAll(ifindexes: number[]): void {
    const o = this.#opts;
    o.interfaces.forEach((name, i) => {
      const ifindex = ifindexes[i];
      let mode: XdpMode = o.mode;
      let linkFd: number;
      try {
        linkFd = this.#lib.xdpLinkCreate(this.#obj.programFd("xdp_lb"), ifindex, modeFlags(mode));
      } catch (e) {
        const errno = e instanceof BpfError ? e.errno : 0;
        if (mode === "native" && errno === EOPNOTSUPP) {
          if (!o.fallbackToGeneric) {
            throw new XdpStartError(
              "native_refused",
              `native XDP is not supported by the driver of '${name}' (EOPNOTSUPP); ` +
                `set mode = "generic" or fallback_to_generic = true`,
              e,
            );
          }
          this.#log?.warn("xdp native mode refused, falling back to generic", { interface: name });
          mode = "generic";
          linkFd = this.#attachOne(name, ifindex, mode);
        } else {
          throw this.#attachError(name, ifindex, e);
        }
      }
      this.#attachments.push({ interface: name, ifindex, mode, linkFd });
      this.#metrics?.attached.with(name, mode).set(1);
    });
  }

  #attachOne(name: string, ifindex: number, mode: XdpMode): number {
    try {
      return this.#lib.xdpLinkCreate(this.#obj.programFd("xdp_lb"), ifindex, modeFlags(mode));
    } catch (e) {
      throw this.#attachError(name, ifindex, e);
    }
  }

  #attachError(name: string, ifindex: number, e: unknown): XdpStartError {
    const errno = e instanceof BpfError ? e.errno : 0;
    if (errno === EPERM) {
      return new XdpStartError(
        "permission",
        `attaching XDP to '${name}' was refused (EPERM): needs CAP_NET_ADMIN`,
        e,
      );
    }
    if (errno === EBUSY || errno === 17 /* EEXIST */) {
      let id = 0;
      try {
        id = this.#lib.xdpQueryId(ifindex, 0);
      } catch { /* best effort */ }
      return new XdpStartError(
        "busy",
        `'${name}' already has an XDP program attached${id ? ` (id ${id})` : ""}; refusing to replace it. ` +
          `Detach it first: ip link set dev ${name} xdp off`,
        e,
      );
    }
    return new XdpStartError("attach", `attaching XDP to '${name}' failed: ${(e as Error).message}`, e);
  }

  /** Writes backends + table into the idle generation, then publishes it. */
  #configure(opts: ResolvedXdpOptions, backends: ResolvedBackend[]): void {
    const gen: 0 | 1 = this.#published ? (1 - this.#active) as 0 | 1 : 0;
    const lib = this.#lib;
    const m = opts.tableSize;
    const n = backends.length;

    // Counters first, so the first packet to a new backend is counted.
    const statsZero = new Uint8Array(perCpuSlot(BACKEND_STATS.size) * this.#nCpus);
    const probe = new Uint8Array(statsZero.length);
    for (const b of backends) {
      const key = encodeBackend(b.address, b.port);
      if (!lib.mapLookup(this.#fd.eg_be_stats, key, probe)) {
        lib.mapUpdate(this.#fd.eg_be_stats, key, statsZero);
      }
    }

    if (n > 0) {
      const keys = new Uint8Array(4 * n);
      const vals = new Uint8Array(BACKEND.size * n);
      const kdv = new DataView(keys.buffer);
      backends.forEach((b, i) => {
        kdv.setUint32(4 * i, gen * EG_MAX_BACKENDS + i, true);
        vals.set(encodeBackend(b.address, b.port), BACKEND.size * i);
      });
      lib.mapUpdateBatch(this.#fd.eg_backends, keys, vals, n);

      const table = maglevTable(backends.map((b) => b.key), backends.map((b) => b.weight), m);
      const tkeys = new Uint8Array(4 * m);
      const tdv = new DataView(tkeys.buffer);
      for (let j = 0; j < m; j++) tdv.setUint32(4 * j, gen * m + j, true);
      const tvals = new Uint8Array(table.buffer.slice(0) as ArrayBuffer); // int32 LE, every slot >= 0
      lib.mapUpdateBatch(this.#fd.eg_table, tkeys, tvals, m);
    }

    const tableSize: [number, number] = [...this.#tableSize];
    const backendCount: [number, number] = [...this.#backendCount];
    tableSize[gen] = n > 0 ? m : 0;
    backendCount[gen] = n;
    const base: Omit<ConfigValue, "active"> = {
      vip: opts.vip,
      port: opts.port,
      protocols: (opts.protocol === "udp" ? 0 : EG_PROTO_TCP) | (opts.protocol === "tcp" ? 0 : EG_PROTO_UDP),
      tableSize,
      backendCount,
      tableStride: m,
      flowRate: opts.newFlowsPerSecond,
      flowBurst: opts.newFlowsBurst,
    };
    // Two writes: the idle generation's sizes with `active` unchanged, then only `active`
    // flips. A packet reading concurrently sees either the old or the new generation whole.
    lib.mapUpdate(this.#fd.eg_config, u32le(0), encodeConfig({ ...base, active: this.#active }));
    lib.mapUpdate(this.#fd.eg_config, u32le(0), encodeConfig({ ...base, active: gen }));
    this.#active = gen;
    this.#published = true;
    this.#tableSize = tableSize;
    this.#backendCount = backendCount;

    const next = new Set(backends.map((b) => b.key));
    for (const old of this.#live) {
      if (next.has(old.key)) continue;
      lib.mapDelete(this.#fd.eg_be_stats, encodeBackend(old.address, old.port));
      this.#metrics?.removeBackend(old.key);
    }
    this.#live = backends;
    this.#opts = opts;
    this.#metrics?.backends.set(n);
    this.#metrics?.tableUpdates.inc();
  }

  /**
   * The SIGHUP path: replaces the backend set (and the new-flow rate) without detaching.
   * Refuses (XdpConfigError) changes that need a restart: interfaces, mode, VIP, port,
   * protocol, table size, flow table size.
   */
  reconfigure(options: XdpOptions): void {
    this.#assertOpen();
    const next = resolveXdpOptions(options);
    const restart = restartOnlyChanges(this.#opts, next);
    if (restart.length > 0) {
      throw new XdpConfigError([`changing ${restart.join(", ")} needs a restart of the XDP program`]);
    }
    this.#configure(next, next.backends);
    this.#log?.info("xdp backends updated", { backends: next.backends.length, generation: this.#active });
  }

  /** Replaces only the backend list (same validation as the options). */
  setBackends(list: XdpOptions["backends"]): void {
    this.#assertOpen();
    const problems: string[] = [];
    const backends = resolveBackends(list, this.#opts.port, this.#opts.tableSize, problems);
    if (problems.length > 0) throw new XdpConfigError(problems);
    this.#configure({ ...this.#opts, backends }, backends);
  }

  /** The backend a flow is pinned to in the LRU flow table, if any (diagnostics, tests). */
  pinnedBackend(t: FlowTuple): { address: string; port: number } | null {
    this.#assertOpen();
    const v = new Uint8Array(BACKEND.size);
    return this.#lib.mapLookup(this.#fd.eg_flows, encodeFlowKey(t), v) ? decodeBackend(v) : null;
  }

  /** Sums the per-CPU counters: global ones and one entry per live backend. */
  stats(): XdpStats {
    this.#assertOpen();
    const slot = perCpuSlot(STATS_SIZE);
    const buf = new Uint8Array(slot * this.#nCpus);
    const global = {} as Record<StatName, number>;
    const found = this.#lib.mapLookup(this.#fd.eg_stats, u32le(0), buf);
    for (let i = 0; i < STAT_COUNT; i++) {
      global[STAT_NAMES[i]] = found ? sumPerCpu(buf, this.#nCpus, slot, 8 * i) : 0;
    }

    const bslot = perCpuSlot(BACKEND_STATS.size);
    const bbuf = new Uint8Array(bslot * this.#nCpus);
    const backends: BackendCounters[] = [];
    for (const b of this.#live) {
      const ok = this.#lib.mapLookup(this.#fd.eg_be_stats, encodeBackend(b.address, b.port), bbuf);
      const sum = (off: number) => ok ? sumPerCpu(bbuf, this.#nCpus, bslot, off) : 0;
      backends.push({
        key: b.key,
        packets: sum(BACKEND_STATS.packets),
        bytes: sum(BACKEND_STATS.bytes),
        newFlows: sum(BACKEND_STATS.newFlows),
        replyPackets: sum(BACKEND_STATS.replyPackets),
        replyBytes: sum(BACKEND_STATS.replyBytes),
      });
    }
    return { global, backends };
  }

  /** Detaches from every interface and frees the program and maps. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const a of this.#attachments) {
      try {
        this.#lib.linkDetach(a.linkFd);
      } catch (e) {
        this.#log?.warn("xdp detach failed; closing the link fd detaches it", {
          interface: a.interface,
          error: (e as Error).message,
        });
      }
      this.#lib.closeFd(a.linkFd);
      this.#metrics?.attached.with(a.interface, a.mode).set(0);
    }
    this.#attachments = [];
    this.#obj.close();
    this.#log?.info("xdp detached");
  }

  #assertOpen(): void {
    if (this.#closed) throw new Error("XDP controller is closed");
  }
}

function modeFlags(mode: XdpMode): number {
  return mode === "native" ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
}
