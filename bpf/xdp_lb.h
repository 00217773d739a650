/* SPDX-License-Identifier: (GPL-2.0-only OR MIT) */
/*
 * Shared layout of every map key and value of xdp_lb.c. The TypeScript side (src/xdp/layout.ts)
 * writes and reads these as raw bytes; tests/unit/xdp_layout.test.ts compiles a small C program
 * against this header and compares sizeof/offsetof/enum values with the TS constants, so a
 * change here that is not mirrored there fails the suite instead of corrupting maps.
 *
 * Conventions: addresses and ports are kept in NETWORK byte order (as they sit in the packet),
 * every struct is padded explicitly so no compiler-inserted hole exists, counters are __u64.
 */
#ifndef EG_XDP_LB_H
#define EG_XDP_LB_H

#include <linux/types.h>

/* Backend slots per generation in eg_backends (the map holds two generations). */
#define EG_MAX_BACKENDS 1024

/* Protocol bits of eg_config.protocols. */
#define EG_PROTO_TCP 1
#define EG_PROTO_UDP 2

/*
 * The one entry of eg_config. Two generations of (backends, table) exist side by side; the
 * program reads generation `active`. The controller fills the inactive one completely, then
 * flips `active` in a second write, so a packet never sees a half-written table.
 */
struct eg_config {
	__u32 vip;              /* virtual IP, network order */
	__u16 port;             /* virtual port, network order */
	__u8 protocols;         /* EG_PROTO_* bits */
	__u8 active;            /* live generation: 0 or 1 */
	__u32 table_size[2];    /* Maglev table size M (prime) per generation, 0 = no table */
	__u32 backend_count[2]; /* backends per generation */
	__u32 table_stride;     /* slots reserved per generation in eg_table */
	__u32 flow_rate;        /* new flows per second per CPU, 0 = unlimited */
	__u32 flow_burst;       /* bucket depth in flows */
	__u32 _pad;
};

/* A backend (also the value of eg_flows: the backend a flow is pinned to). */
struct eg_backend {
	__u32 addr; /* network order */
	__u16 port; /* network order */
	__u16 _pad;
};

/* 5-tuple as seen on the wire (key of eg_flows and eg_replies). */
struct eg_flow_key {
	__u32 src;
	__u32 dst;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 _pad[3];
};

/* Value of eg_replies: what a backend's reply source is rewritten to. */
struct eg_nat {
	__u32 vip;
	__u16 port;
	__u16 _pad;
};

/* Per-CPU token bucket (eg_bucket), in nano-flows so the arithmetic stays integral. */
struct eg_bucket {
	__u64 tokens;
	__u64 last_ns;
};

/* Per-CPU counters per backend (eg_be_stats, keyed by struct eg_backend). */
struct eg_backend_stats {
	__u64 packets;       /* client → backend */
	__u64 bytes;
	__u64 new_flows;
	__u64 reply_packets; /* backend → client (source rewritten to the VIP) */
	__u64 reply_bytes;
};

/* Indexes into struct eg_stats.c (per-CPU global counters). Bytes are whole frames. */
enum eg_stat {
	EG_STAT_VIP_PACKETS = 0,
	EG_STAT_VIP_BYTES,
	EG_STAT_REPLY_PACKETS,
	EG_STAT_REPLY_BYTES,
	EG_STAT_NEW_FLOWS,
	EG_STAT_FWD_REDIRECT,        /* sent out another interface with bpf_redirect */
	EG_STAT_FWD_TX,              /* bounced out of the ingress interface (XDP_TX) */
	EG_STAT_KERNEL_NO_NEIGH,     /* rewritten, then handed to the kernel: no neighbour entry yet */
	EG_STAT_KERNEL_MTU,          /* rewritten, then handed to the kernel: larger than the egress MTU */
	EG_STAT_KERNEL_OTHER,        /* rewritten, then handed to the kernel: any other fib result */
	EG_STAT_PASS_NOT_IPV4,       /* not IPv4 (ARP, IPv6, VLAN-tagged…) */
	EG_STAT_PASS_IP_OPTIONS,     /* IPv4 header with options */
	EG_STAT_PASS_FRAGMENT,       /* IPv4 fragment */
	EG_STAT_PASS_MALFORMED,      /* truncated header */
	EG_STAT_PASS_TTL,            /* TTL would expire here: the kernel sends the ICMP */
	EG_STAT_PASS_NOT_OURS,       /* neither VIP traffic nor a reply of a known flow */
	EG_STAT_DROP_RATE_LIMITED,   /* new flow over the per-CPU budget */
	EG_STAT_DROP_NO_BACKEND,     /* VIP traffic but the live table is empty */
	EG_STAT_MAX
};

struct eg_stats {
	__u64 c[EG_STAT_MAX];
};

/*
 * ---- Packet arithmetic shared by the BPF program and the host-side C test ----
 * Pure C on __u8/__u16/__u32 and struct iphdr only, so tests/unit/xdp_layout.test.ts compiles
 * this very code for the host and checks it (flow hash against TS, checksums against a full
 * recomputation) instead of checking a copy.
 */
#include <linux/ip.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define EG_HTONS(x) ((__u16)__builtin_bswap16(x))
#else
#define EG_HTONS(x) ((__u16)(x))
#endif

/* RFC 1624 incremental update HC' = ~(~HC + ~m + m'), on 16-bit words in wire order. */
static __always_inline __u16 eg_csum_fold(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)c;
}

static __always_inline __u16 eg_csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 c = (__u16)~check;
	c += (~from & 0xffff) + (~from >> 16);
	c += (to & 0xffff) + (to >> 16);
	return (__u16)~eg_csum_fold(c);
}

static __always_inline __u16 eg_csum_replace2(__u16 check, __u16 from, __u16 to)
{
	__u32 c = (__u16)~check;
	c += (__u16)~from;
	c += to;
	return (__u16)~eg_csum_fold(c);
}

/* The kernel's ip_decrease_ttl: TTL is the high byte of a 16-bit word, so +0x0100 to the sum. */
static __always_inline void eg_ip_decrease_ttl(struct iphdr *ip)
{
	__u32 check = (__u32)ip->check;
	check += (__u32)EG_HTONS(0x0100);
	ip->check = (__u16)(check + (check >= 0xffff));
	--ip->ttl;
}

/*
 * Rewrites one address (saddr or daddr, given by `addr`) and the matching port, fixing the IP
 * header checksum and the L4 checksum (pseudo-header address + port). `l4check` is the TCP or
 * UDP checksum field; with `udp` a zero checksum ("none") stays zero and a computed zero is
 * sent as 0xffff (RFC 768).
 */
static __always_inline void eg_rewrite(struct iphdr *ip, __u32 *addr, __u16 *port, __u16 *l4check, int udp,
				       __u32 new_addr, __u16 new_port)
{
	__u32 old_addr = *addr;
	__u16 old_port = *port;

	ip->check = eg_csum_replace4(ip->check, old_addr, new_addr);
	*addr = new_addr;
	*port = new_port;
	if (udp && *l4check == 0)
		return;
	__u16 c = eg_csum_replace4(*l4check, old_addr, new_addr);
	c = eg_csum_replace2(c, old_port, new_port);
	if (udp && c == 0)
		c = 0xffff;
	*l4check = c;
}

/*
 * The flow hash: eg_hash32 of src/balancer/hash.ts (FNV-1a 32, seed 0, then murmur3 fmix32)
 * over the first 13 bytes of the key (src, dst, sport, dport, proto, as on the wire). A new
 * flow's Maglev slot is eg_flow_hash(key) % M; src/xdp/layout.ts flowHash() is the TS twin.
 */
static __always_inline __u32 eg_flow_hash(const struct eg_flow_key *k)
{
	const __u8 *b = (const __u8 *)k;
	__u32 h = 2166136261u;
#pragma unroll
	for (int i = 0; i < 13; i++) {
		h ^= b[i];
		h *= 16777619u;
	}
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

#endif
