/**
 * The XDP controller's options: a plain object (the `[xdp]` TOML table maps onto it one to one,
 * see docs/XDP.md), validated and defaulted here without any FFI so `--check` and unit tests
 * can use it. Every problem is reported at once, each naming its option.
 */

import { isPrime } from "../balancer/maglev.ts";
import { ipv4Bytes } from "./layout.ts";
import { EG_MAX_BACKENDS } from "./layout.ts";

export type XdpMode = "native" | "generic";
export type XdpProtocol = "tcp" | "udp" | "tcp+udp";

export interface XdpBackend {
  /** IPv4 address of the backend. */
  address: string;
  /** Port on the backend; defaults to the VIP port. */
  port?: number;
  /** Maglev weight (positive integer); default 1. */
  weight?: number;
}

export interface XdpOptions {
  /**
   * Every interface where VIP traffic or backend replies arrive (the program runs on each;
   * the LB must be the router between clients and backends both ways).
   */
  interfaces: string[];
  mode: XdpMode;
  /** When native attach is refused by a driver, attach generic instead of failing. Default false. */
  fallbackToGeneric?: boolean;
  vip: string;
  port: number;
  protocol: XdpProtocol;
  backends: XdpBackend[];
  /** Maglev table size M (prime); the most any later reload may use. Default 65537. */
  tableSize?: number;
  /** New flows admitted per second PER CPU; 0 = unlimited (default). */
  newFlowsPerSecond?: number;
  /** Token-bucket depth in flows; default max(1, newFlowsPerSecond). */
  newFlowsBurst?: number;
  /** Entries of each LRU flow table (forward and reply). Default 65536. */
  flowTableSize?: number;
  /** Compiled program; default bpf/xdp_lb.o next to the source tree. */
  objectPath?: string;
  /** Default "libbpf.so.1". */
  libbpfPath?: string;
}

export interface ResolvedBackend {
  address: string;
  port: number;
  weight: number;
  /** Maglev key: "address:port" (the same key the userspace balancer would hash). */
  key: string;
}

export interface ResolvedXdpOptions {
  interfaces: string[];
  mode: XdpMode;
  fallbackToGeneric: boolean;
  vip: string;
  port: number;
  protocol: XdpProtocol;
  backends: ResolvedBackend[];
  tableSize: number;
  newFlowsPerSecond: number;
  newFlowsBurst: number;
  flowTableSize: number;
  objectPath: string;
  libbpfPath: string;
}

export const DEFAULT_XDP_TABLE_SIZE = 65537;
export const DEFAULT_FLOW_TABLE_SIZE = 65536;
export const MAX_XDP_TABLE_SIZE = 1_000_003;
export const MAX_NEW_FLOWS_PER_SECOND = 100_000_000;

export class XdpConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid XDP options: ${problems.join("; ")}`);
    this.name = "XdpConfigError";
  }
}

export function defaultObjectPath(): string {
  return new URL("../../bpf/xdp_lb.o", import.meta.url).pathname;
}

const IFNAME = /^[^\s/:]{1,15}$/;

function isIpv4(s: unknown): s is string {
  if (typeof s !== "string") return false;
  try {
    return ipv4Bytes(s).some((b) => b !== 0);
  } catch {
    return false;
  }
}

function isPort(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;
}

function intIn(n: unknown, lo: number, hi: number): n is number {
  return Number.isInteger(n) && (n as number) >= lo && (n as number) <= hi;
}

/** Validates a backend list against a VIP port; problems are appended to `problems`. */
export function resolveBackends(
  list: unknown,
  vipPort: number,
  tableSize: number,
  problems: string[],
): ResolvedBackend[] {
  if (!Array.isArray(list)) {
    problems.push("backends must be a list");
    return [];
  }
  if (list.length > EG_MAX_BACKENDS) {
    problems.push(`backends: at most ${EG_MAX_BACKENDS}, got ${list.length}`);
  }
  if (list.length > tableSize) problems.push(`backends: ${list.length} exceed table_size ${tableSize}`);
  const out: ResolvedBackend[] = [];
  const seen = new Set<string>();
  list.forEach((b: XdpBackend, i: number) => {
    const where = `backends[${i}]`;
    if (typeof b !== "object" || b === null) {
      problems.push(`${where} must be a table`);
      return;
    }
    if (!isIpv4(b.address)) {
      problems.push(`${where}.address must be a non-zero IPv4 address, got ${JSON.stringify(b.address)}`);
      return;
    }
    const port = b.port ?? vipPort;
    if (!isPort(port)) {
      problems.push(`${where}.port must be 1..65535, got ${JSON.stringify(b.port)}`);
      return;
    }
    const weight = b.weight ?? 1;
    if (!intIn(weight, 1, 1_000_000)) {
      problems.push(`${where}.weight must be an integer 1..1000000, got ${JSON.stringify(b.weight)}`);
      return;
    }
    const key = `${b.address}:${port}`;
    if (seen.has(key)) {
      problems.push(`${where}: duplicate backend ${key}`);
      return;
    }
    seen.add(key);
    out.push({ address: b.address, port, weight, key });
  });
  return out;
}

/** Validates and defaults; throws XdpConfigError listing every problem. */
export function resolveXdpOptions(o: XdpOptions): ResolvedXdpOptions {
  const problems: string[] = [];
  const interfaces = Array.isArray(o.interfaces) ? o.interfaces : [];
  if (interfaces.length === 0) problems.push("interfaces must list at least one interface");
  for (const name of interfaces) {
    if (typeof name !== "string" || !IFNAME.test(name)) {
      problems.push(`interfaces: ${JSON.stringify(name)} is not an interface name`);
    }
  }
  if (new Set(interfaces).size !== interfaces.length) problems.push("interfaces: listed twice");
  if (o.mode !== "native" && o.mode !== "generic") {
    problems.push(`mode must be "native" or "generic", got ${JSON.stringify(o.mode)}`);
  }
  if (!isIpv4(o.vip)) problems.push(`vip must be a non-zero IPv4 address, got ${JSON.stringify(o.vip)}`);
  if (!isPort(o.port)) problems.push(`port must be 1..65535, got ${JSON.stringify(o.port)}`);
  if (o.protocol !== "tcp" && o.protocol !== "udp" && o.protocol !== "tcp+udp") {
    problems.push(`protocol must be "tcp", "udp" or "tcp+udp", got ${JSON.stringify(o.protocol)}`);
  }
  const tableSize = o.tableSize ?? DEFAULT_XDP_TABLE_SIZE;
  if (!intIn(tableSize, 3, MAX_XDP_TABLE_SIZE) || !isPrime(tableSize)) {
    problems.push(`table_size must be a prime 3..${MAX_XDP_TABLE_SIZE}, got ${JSON.stringify(o.tableSize)}`);
  }
  const rate = o.newFlowsPerSecond ?? 0;
  if (!intIn(rate, 0, MAX_NEW_FLOWS_PER_SECOND)) {
    problems.push(
      `new_flows_per_second must be an integer 0..${MAX_NEW_FLOWS_PER_SECOND}, got ${
        JSON.stringify(o.newFlowsPerSecond)
      }`,
    );
  }
  const burst = o.newFlowsBurst ?? Math.max(1, rate);
  if (!intIn(burst, 1, 1_000_000_000)) {
    problems.push(`new_flows_burst must be an integer 1..1000000000, got ${JSON.stringify(o.newFlowsBurst)}`);
  }
  const flowTableSize = o.flowTableSize ?? DEFAULT_FLOW_TABLE_SIZE;
  if (!intIn(flowTableSize, 1024, 1 << 24)) {
    problems.push(
      `flow_table_size must be an integer 1024..16777216, got ${JSON.stringify(o.flowTableSize)}`,
    );
  }
  const backends = resolveBackends(o.backends, isPort(o.port) ? o.port : 1, tableSize, problems);
  if (problems.length > 0) throw new XdpConfigError(problems);
  return {
    interfaces: [...interfaces],
    mode: o.mode,
    fallbackToGeneric: o.fallbackToGeneric === true,
    vip: o.vip,
    port: o.port,
    protocol: o.protocol,
    backends,
    tableSize,
    newFlowsPerSecond: rate,
    newFlowsBurst: burst,
    flowTableSize,
    objectPath: o.objectPath ?? defaultObjectPath(),
    libbpfPath: o.libbpfPath ?? "libbpf.so.1",
  };
}

/** Options that need a restart (detach + load) to change; a reload touching them is refused. */
export function restartOnlyChanges(live: ResolvedXdpOptions, next: ResolvedXdpOptions): string[] {
  const out: string[] = [];
  if (live.interfaces.join(",") !== next.interfaces.join(",")) out.push("interfaces");
  if (live.mode !== next.mode) out.push("mode");
  if (live.fallbackToGeneric !== next.fallbackToGeneric) out.push("fallback_to_generic");
  if (live.vip !== next.vip) out.push("vip");
  if (live.port !== next.port) out.push("port");
  if (live.protocol !== next.protocol) out.push("protocol");
  if (live.tableSize !== next.tableSize) out.push("table_size");
  if (live.flowTableSize !== next.flowTableSize) out.push("flow_table_size");
  if (live.objectPath !== next.objectPath) out.push("object_path");
  if (live.libbpfPath !== next.libbpfPath) out.push("libbpf_path");
  return out;
}
