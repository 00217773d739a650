/**
 * Byte layouts of the XDP program's map keys and values (bpf/xdp_lb.h), written and read as
 * raw bytes. Every offset is spelled out here; tests/unit/xdp_layout.test.ts compiles a C
 * program against bpf/xdp_lb.h and checks each size, offset and enum value below, so the two
 * sides cannot drift apart silently.
 *
 * Addresses and ports are stored in network byte order (as in the packet), i.e. the IPv4
 * address bytes in dotted order and ports big-endian. Counters are little-endian u64 (host
 * order on x86-64, the only architecture the build targets). No FFI in this module: it is
 * pure data, usable (and tested) without --allow-ffi.
 */

import { fmix32 } from "../balancer/hash.ts";

export const EG_MAX_BACKENDS = 1024;
export const EG_PROTO_TCP = 1;
export const EG_PROTO_UDP = 2;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** struct eg_config */
export const CONFIG = {
  size: 40,
  vip: 0,
  port: 4,
  protocols: 6,
  active: 7,
  tableSize: 8, // [2] u32
  backendCount: 16, // [2] u32
  tableStride: 24,
  flowRate: 28,
  flowBurst: 32,
} as const;

/** struct eg_backend (also the eg_flows value and the eg_be_stats key) */
export const BACKEND = { size: 8, addr: 0, port: 4 } as const;
/** struct eg_flow_key */
export const FLOW_KEY = { size: 16, src: 0, dst: 4, sport: 8, dport: 10, proto: 12 } as const;
/** struct eg_nat */
export const NAT = { size: 8, vip: 0, port: 4 } as const;
/** struct eg_bucket */
export const BUCKET = { size: 16, tokens: 0, lastNs: 8 } as const;
/** struct eg_backend_stats */
export const BACKEND_STATS = {
  size: 40,
  packets: 0,
  bytes: 8,
  newFlows: 16,
  replyPackets: 24,
  replyBytes: 32,
} as const;

/** enum eg_stat, in order: the index of each counter in struct eg_stats. */
export const STAT_NAMES = [
  "VIP_PACKETS",
  "VIP_BYTES",
  "REPLY_PACKETS",
  "REPLY_BYTES",
  "NEW_FLOWS",
  "FWD_REDIRECT",
  "FWD_TX",
  "KERNEL_NO_NEIGH",
  "KERNEL_MTU",
  "KERNEL_OTHER",
  "PASS_NOT_IPV4",
  "PASS_IP_OPTIONS",
  "PASS_FRAGMENT",
  "PASS_MALFORMED",
  "PASS_TTL",
  "PASS_NOT_OURS",
  "DROP_RATE_LIMITED",
  "DROP_NO_BACKEND",
] as const;
export type StatName = typeof STAT_NAMES[number];
export const STAT_COUNT = STAT_NAMES.length;
/** struct eg_stats */
export const STATS_SIZE = STAT_COUNT * 8;

/** Parses dotted-quad IPv4 into its 4 wire bytes; throws on anything else. */
export function ipv4Bytes(ip: string): Uint8Array<ArrayBuffer> {
  const parts = ip.split(".");
  if (parts.length !== 4) throw new Error(`'${ip}' is not an IPv4 address`);
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i];
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p) || Number(p) > 255) {
      throw new Error(`'${ip}' is not an IPv4 address`);
    }
    out[i] = Number(p);
  }
  return out;
}

export function ipv4String(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

function putPort(dv: DataView, off: number, port: number): void {
  dv.setUint16(off, port, false); // network order
}

export interface ConfigValue {
  vip: string;
  port: number;
  protocols: number;
  active: 0 | 1;
  tableSize: [number, number];
  backendCount: [number, number];
  tableStride: number;
  flowRate: number;
  flowBurst: number;
}

export function encodeConfig(c: ConfigValue): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(CONFIG.size);
  const dv = new DataView(b.buffer);
  b.set(ipv4Bytes(c.vip), CONFIG.vip);
  putPort(dv, CONFIG.port, c.port);
  b[CONFIG.protocols] = c.protocols;
  b[CONFIG.active] = c.active;
  for (let g = 0; g < 2; g++) {
    dv.setUint32(CONFIG.tableSize + 4 * g, c.tableSize[g], true);
    dv.setUint32(CONFIG.backendCount + 4 * g, c.backendCount[g], true);
  }
  dv.setUint32(CONFIG.tableStride, c.tableStride, true);
  dv.setUint32(CONFIG.flowRate, c.flowRate, true);
  dv.setUint32(CONFIG.flowBurst, c.flowBurst, true);
  return b;
}

export function encodeBackend(addr: string, port: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(BACKEND.size);
  b.set(ipv4Bytes(addr), BACKEND.addr);
  putPort(new DataView(b.buffer), BACKEND.port, port);
  return b;
}

export function decodeBackend(b: Uint8Array): { address: string; port: number } {
  return {
    address: ipv4String(b, BACKEND.addr),
    port: new DataView(b.buffer, b.byteOffset, b.byteLength).getUint16(BACKEND.port, false),
  };
}

export interface FlowTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  proto: number;
}

export function encodeFlowKey(t: FlowTuple): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(FLOW_KEY.size);
  const dv = new DataView(b.buffer);
  b.set(ipv4Bytes(t.src), FLOW_KEY.src);
  b.set(ipv4Bytes(t.dst), FLOW_KEY.dst);
  putPort(dv, FLOW_KEY.sport, t.sport);
  putPort(dv, FLOW_KEY.dport, t.dport);
  b[FLOW_KEY.proto] = t.proto;
  return b;
}

export function u32le(n: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

/**
 * The program's flow hash: eg_hash32 (FNV-1a 32 + fmix32, seed 0; src/balancer/hash.ts) over
 * the first 13 bytes of the flow key (src, dst, sport, dport, proto as on the wire). The
 * packet's Maglev slot is flowHash % M, so TS can predict which backend a flow lands on.
 */
export function flowHash(t: FlowTuple): number {
  const k = encodeFlowKey(t);
  let h = 0x811c9dc5;
  for (let i = 0; i < 13; i++) h = Math.imul(h ^ k[i], 0x01000193);
  return fmix32(h);
}

/** Sums a per-CPU value buffer (nCpus slots of `slotSize` bytes) at u64 offset `off`. */
export function sumPerCpu(buf: Uint8Array, nCpus: number, slotSize: number, off: number): number {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let total = 0n;
  for (let cpu = 0; cpu < nCpus; cpu++) total += dv.getBigUint64(cpu * slotSize + off, true);
  return Number(total);
}

/** Per-CPU map values are each rounded up to 8 bytes. */
export function perCpuSlot(valueSize: number): number {
  return (valueSize + 7) & ~7;
}
