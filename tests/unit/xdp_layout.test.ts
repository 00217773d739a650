/**
 * The TS byte layouts (src/xdp/layout.ts) against the C structs (bpf/xdp_lb.h), two ways:
 * a host C program compiled against the header prints sizeof/offsetof/enum values, and the
 * BTF of the compiled bpf/xdp_lb.o (bpftool) gives the sizes the kernel will check map values
 * against. The same C program also runs the header's packet arithmetic — the flow hash against
 * flowHash() in TS, and the incremental checksum rewrite against full recomputation over a
 * million random TCP/UDP packets — so the code the XDP program inlines is the code tested here.
 * No root needed.
 */

import assert from "node:assert/strict";
import {
  BACKEND,
  BACKEND_STATS,
  BUCKET,
  CONFIG,
  EG_MAX_BACKENDS,
  EG_PROTO_TCP,
  EG_PROTO_UDP,
  FLOW_KEY,
  flowHash,
  type FlowTuple,
  NAT,
  STAT_COUNT,
  STAT_NAMES,
  STATS_SIZE,
} from "../../src/xdp/layout.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

const STRUCTS: Record<string, Record<string, number>> = {
  eg_config: {
    vip: CONFIG.vip,
    port: CONFIG.port,
    protocols: CONFIG.protocols,
    active: CONFIG.active,
    table_size: CONFIG.tableSize,
    backend_count: CONFIG.backendCount,
    table_stride: CONFIG.tableStride,
    flow_rate: CONFIG.flowRate,
    flow_burst: CONFIG.flowBurst,
  },
  eg_backend: { addr: BACKEND.addr, port: BACKEND.port },
  eg_flow_key: {
    src: FLOW_KEY.src,
    dst: FLOW_KEY.dst,
    sport: FLOW_KEY.sport,
    dport: FLOW_KEY.dport,
    proto: FLOW_KEY.proto,
  },
  eg_nat: { vip: NAT.vip, port: NAT.port },
  eg_bucket: { tokens: BUCKET.tokens, last_ns: BUCKET.lastNs },
  eg_backend_stats: {
    packets: BACKEND_STATS.packets,
    bytes: BACKEND_STATS.bytes,
    new_flows: BACKEND_STATS.newFlows,
    reply_packets: BACKEND_STATS.replyPackets,
    reply_bytes: BACKEND_STATS.replyBytes,
  },
};
const SIZES: Record<string, number> = {
  eg_config: CONFIG.size,
  eg_backend: BACKEND.size,
  eg_flow_key: FLOW_KEY.size,
  eg_nat: NAT.size,
  eg_bucket: BUCKET.size,
  eg_backend_stats: BACKEND_STATS.size,
  eg_stats: STATS_SIZE,
};

const TUPLES: FlowTuple[] = [
  { src: "10.201.1.2", dst: "10.201.100.1", sport: 41000, dport: 7000, proto: 6 },
  { src: "10.201.1.2", dst: "10.201.100.1", sport: 41001, dport: 7000, proto: 17 },
  { src: "192.168.255.254", dst: "1.2.3.4", sport: 1, dport: 65535, proto: 6 },
  { src: "0.0.0.1", dst: "255.255.255.255", sport: 65535, dport: 1, proto: 17 },
];

function cProgram(): string {
  const lines: string[] = [];
  for (const [s, members] of Object.entries(STRUCTS)) {
    lines.push(`SIZE(${s});`);
    for (const m of Object.keys(members)) lines.push(`OFF(${s}, ${m});`);
  }
  lines.push("SIZE(eg_stats);");
  for (const n of STAT_NAMES) lines.push(`VAL(EG_STAT_${n});`);
  lines.push("VAL(EG_STAT_MAX); VAL(EG_MAX_BACKENDS); VAL(EG_PROTO_TCP); VAL(EG_PROTO_UDP);");
  TUPLES.forEach((t, i) => {
    lines.push(`{ struct eg_flow_key k; memset(&k, 0, sizeof k);
      inet_pton(AF_INET, "${t.src}", &k.src); inet_pton(AF_INET, "${t.dst}", &k.dst);
      k.sport = htons(${t.sport}); k.dport = htons(${t.dport}); k.proto = ${t.proto};
      printf("\\"hash${i}\\": %u,\\n", eg_flow_hash(&k)); }`);
  });
  return `
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include "xdp_lb.h"
#define OFF(S, m) printf("\\"" #S "." #m "\\": %zu,\\n", offsetof(struct S, m))
#define SIZE(S) printf("\\"" #S "\\": %zu,\\n", sizeof(struct S))
#define VAL(n) printf("\\"" #n "\\": %lld,\\n", (long long)(n))

/* One's-complement sum of native 16-bit loads (what the receiver's verification amounts to). */
static __u32 sum16(const __u8 *p, size_t n, __u32 acc) {
  size_t i;
  for (i = 0; i + 1 < n; i += 2) { __u16 w; memcpy(&w, p + i, 2); acc += w; }
  if (n & 1) { __u8 last[2] = { p[n - 1], 0 }; __u16 w; memcpy(&w, last, 2); acc += w; }
  return acc;
}
static __u16 fold(__u32 a) { while (a >> 16) a = (a & 0xffff) + (a >> 16); return (__u16)a; }
static __u32 l4sum(const struct iphdr *ip, const __u8 *l4, size_t len) {
  __u8 ph[12];
  memcpy(ph, &ip->saddr, 4); memcpy(ph + 4, &ip->daddr, 4); ph[8] = 0; ph[9] = ip->protocol;
  __u16 l = htons((__u16)len); memcpy(ph + 10, &l, 2);
  return sum16(l4, len, sum16(ph, 12, 0));
}
static unsigned rnd(void) { return ((unsigned)rand() << 16) ^ (unsigned)rand(); }

int main(void) {
  printf("{\\n");
  ${lines.join("\n  ")}
  srand(12345);
  long cases = 0, failures = 0, udpZeroResults = 0, udpNone = 0;
  for (long i = 0; i < 1000000; i++) {
    __u8 pkt[20 + 20 + 64];
    struct iphdr *ip = (struct iphdr *)pkt;
    int udp = rnd() & 1;
    size_t hdr = udp ? 8 : 20, payload = rnd() % 41, l4len = hdr + payload;
    for (size_t j = 0; j < sizeof pkt; j++) pkt[j] = (__u8)rnd();
    ip->version = 4; ip->ihl = 5; ip->tot_len = htons((__u16)(20 + l4len)); ip->frag_off = 0;
    ip->ttl = (__u8)(2 + rnd() % 254); ip->protocol = udp ? 17 : 6; ip->check = 0;
    ip->check = (__u16)~fold(sum16(pkt, 20, 0));
    __u8 *l4 = pkt + 20;
    __u16 *check = (__u16 *)(l4 + (udp ? 6 : 16));
    __u16 *sport = (__u16 *)l4, *dport = (__u16 *)(l4 + 2);
    if (udp) { __u16 ul = htons((__u16)l4len); memcpy(l4 + 4, &ul, 2); }
    *check = 0;
    int none = udp && (rnd() % 8 == 0);
    if (!none) { __u16 c = (__u16)~fold(l4sum(ip, l4, l4len)); if (udp && c == 0) c = 0xffff; *check = c; }
    if (none) udpNone++;
    __u32 naddr = rnd(); __u16 nport = (__u16)rnd();
    if (rnd() & 1) eg_rewrite(ip, &ip->daddr, dport, check, udp, naddr, nport);
    else eg_rewrite(ip, &ip->saddr, sport, check, udp, naddr, nport);
    if (rnd() & 1) eg_ip_decrease_ttl(ip);
    cases++;
    int bad = fold(sum16(pkt, 20, 0)) != 0xffff;
    if (none) bad |= *check != 0;
    else {
      bad |= fold(l4sum(ip, l4, l4len)) != 0xffff;
      if (udp) {
        bad |= *check == 0;
        __u16 saved = *check; *check = 0;
        if ((__u16)~fold(l4sum(ip, l4, l4len)) == 0) udpZeroResults++;
        *check = saved;
      }
    }
    failures += bad;
  }
  printf("\\"csum_cases\\": %ld,\\n\\"csum_failures\\": %ld,\\n\\"udp_zero_results\\": %ld,\\n\\"udp_none\\": %ld\\n}\\n",
         cases, failures, udpZeroResults, udpNone);
  return 0;
}
`;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  if (out.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}

Deno.test("xdp layout: TS offsets, sizes and enums match bpf/xdp_lb.h; header arithmetic is right", async () => {
  const dir = await Deno.makeTempDir({ prefix: "egx-layout-" });
  try {
    await Deno.writeTextFile(`${dir}/layout.c`, cProgram());
    await run("clang", [
      "-O2",
      "-Wall",
      "-Werror",
      `-I${ROOT}bpf`,
      "-I/usr/include/x86_64-linux-gnu",
      `${dir}/layout.c`,
      "-o",
      `${dir}/layout`,
    ]);
    const c = JSON.parse(await run(`${dir}/layout`, []));
    for (const [s, members] of Object.entries(STRUCTS)) {
      assert.equal(c[s], SIZES[s], `sizeof(struct ${s})`);
      for (const [m, off] of Object.entries(members)) {
        assert.equal(c[`${s}.${m}`], off, `offsetof(${s}, ${m})`);
      }
    }
    assert.equal(c.eg_stats, STATS_SIZE);
    STAT_NAMES.forEach((n, i) => assert.equal(c[`EG_STAT_${n}`], i, `EG_STAT_${n}`));
    assert.equal(c.EG_STAT_MAX, STAT_COUNT);
    assert.equal(c.EG_MAX_BACKENDS, EG_MAX_BACKENDS);
    assert.equal(c.EG_PROTO_TCP, EG_PROTO_TCP);
    assert.equal(c.EG_PROTO_UDP, EG_PROTO_UDP);
    TUPLES.forEach((t, i) => assert.equal(c[`hash${i}`], flowHash(t), `flow hash of ${JSON.stringify(t)}`));
    assert.equal(c.csum_cases, 1_000_000);
    assert.equal(c.csum_failures, 0, "incremental checksums disagree with full recomputation");
    assert.ok(c.udp_zero_results > 0, "the UDP 'computed zero → 0xffff' case was never exercised");
    assert.ok(c.udp_none > 0, "the UDP 'no checksum' case was never exercised");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("xdp layout: the BTF in bpf/xdp_lb.o agrees with the TS sizes and offsets", async () => {
  const build = await run("bash", [`${ROOT}scripts/build-bpf.sh`]);
  assert.match(build, /build-bpf: ok/);
  const raw = await run("bpftool", ["btf", "dump", "file", `${ROOT}bpf/xdp_lb.o`, "format", "raw"]);
  const structs = new Map<string, { size: number; members: Map<string, number> }>();
  let current: { size: number; members: Map<string, number> } | null = null;
  for (const line of raw.split("\n")) {
    const head = /^\[\d+\] (\w+) '([^']*)'(?: size=(\d+))?/.exec(line);
    if (head) {
      current = head[1] === "STRUCT" ? { size: Number(head[3]), members: new Map() } : null;
      if (current) structs.set(head[2], current);
      continue;
    }
    const mem = /^\s+'(\w+)' type_id=\d+ bits_offset=(\d+)/.exec(line);
    if (mem && current) current.members.set(mem[1], Number(mem[2]) / 8);
  }
  for (const [s, members] of Object.entries(STRUCTS)) {
    const b = structs.get(s);
    assert.ok(b, `struct ${s} missing from the BTF of bpf/xdp_lb.o`);
    assert.equal(b.size, SIZES[s], `BTF size of ${s}`);
    for (const [m, off] of Object.entries(members)) {
      assert.equal(b.members.get(m), off, `BTF offset ${s}.${m}`);
    }
  }
  assert.equal(structs.get("eg_stats")?.size, STATS_SIZE);
});
