// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * xdp_lb: the L4 fast path of ExpressGateway. One IPv4 virtual service (VIP:port, TCP and/or
 * UDP) is spread over backends by a Maglev table that the TypeScript controller fills
 * (src/xdp/controller.ts, same construction as src/balancer/maglev.ts). The LB is a router in
 * the path both ways (half NAT, client address preserved):
 *
 *   client → VIP:port          DNAT to backend:bport, forward        (eg_flows pins the flow)
 *   backend:bport → client     SNAT back to VIP:port, forward        (eg_replies finds it)
 *
 * Forwarding uses bpf_fib_lookup: XDP_REDIRECT to the egress interface, XDP_TX when that is the
 * ingress one, and XDP_PASS of the already rewritten packet when the kernel has to help (no
 * neighbour entry yet, MTU, unusual routes) — the kernel then forwards it like any packet.
 *
 * What it does not own goes to the kernel untouched (XDP_PASS, counted by reason): non-IPv4
 * (IPv6 is not handled), IPv4 with options, fragments, TTL about to expire, anything that is
 * neither VIP traffic nor the reply of a known flow. Checksums are updated incrementally
 * (RFC 1624); a UDP checksum of zero ("none") stays zero. Offloaded (CHECKSUM_PARTIAL) packets
 * are not handled: senders on the same host must turn TX checksum offload off (see docs/XDP.md).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "xdp_lb.h"

#define AF_INET 2
#define NS_PER_SEC 1000000000ULL
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct eg_config);
} eg_config SEC(".maps");

/* Two generations: slot gen * EG_MAX_BACKENDS + i. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * EG_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct eg_backend);
} eg_backends SEC(".maps");

/* Two generations of Maglev slots → backend index: slot gen * table_stride + j. The controller
 * sets max_entries to 2 * table_stride before loading. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * 65537);
	__type(key, __u32);
	__type(value, __u32);
} eg_table SEC(".maps");

/* client 5-tuple → backend; established flows keep their backend when the table changes. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct eg_flow_key);
	__type(value, struct eg_backend);
} eg_flows SEC(".maps");

/* backend-side 5-tuple of a reply (backend → client) → VIP:port to put back as its source. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct eg_flow_key);
	__type(value, struct eg_nat);
} eg_replies SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct eg_stats);
} eg_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 4 * EG_MAX_BACKENDS);
	__type(key, struct eg_backend);
	__type(value, struct eg_backend_stats);
} eg_be_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct eg_bucket);
} eg_bucket SEC(".maps");

/* Per-CPU token bucket: 1 if a new flow may be created now. */
static __always_inline int flow_admit(const struct eg_config *cfg)
{
	if (cfg->flow_rate == 0)
		return 1;
	__u32 zero = 0;
	struct eg_bucket *b = bpf_map_lookup_elem(&eg_bucket, &zero);
	if (!b)
		return 1;
	__u64 now = bpf_ktime_get_ns();
	__u64 elapsed = now - b->last_ns;
	/* Capped so elapsed * rate cannot overflow (rate <= 1e8 is enforced by the controller). */
	if (elapsed > 10 * NS_PER_SEC)
		elapsed = 10 * NS_PER_SEC;
	__u64 cap = (__u64)cfg->flow_burst * NS_PER_SEC;
	__u64 tokens = b->tokens + elapsed * cfg->flow_rate;
	if (tokens > cap)
		tokens = cap;
	b->last_ns = now;
	if (tokens < NS_PER_SEC) {
		b->tokens = tokens;
		return 0;
	}
	b->tokens = tokens - NS_PER_SEC;
	return 1;
}

/*
 * Sends a rewritten packet on its way. `ttl` was checked (> 1) by the caller. On anything but a
 * successful lookup the packet goes to the kernel, which forwards (or ICMPs) it as usual.
 */
static __always_inline int forward(struct xdp_md *ctx, struct ethhdr *eth, struct iphdr *ip, __u16 sport,
				   __u16 dport, struct eg_stats *st)
{
	struct bpf_fib_lookup p = {};
	p.family = AF_INET;
	p.tos = ip->tos;
	p.l4_protocol = ip->protocol;
	p.sport = sport;
	p.dport = dport;
	p.tot_len = bpf_ntohs(ip->tot_len);
	p.ipv4_src = ip->saddr;
	p.ipv4_dst = ip->daddr;
	p.ifindex = ctx->ingress_ifindex;

	long rc = bpf_fib_lookup(ctx, &p, sizeof(p), 0);
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		eg_ip_decrease_ttl(ip);
		__builtin_memcpy(eth->h_dest, p.dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, p.smac, ETH_ALEN);
		if (p.ifindex == ctx->ingress_ifindex) {
			if (st)
				st->c[EG_STAT_FWD_TX]++;
			return XDP_TX;
		}
		if (st)
			st->c[EG_STAT_FWD_REDIRECT]++;
		return bpf_redirect(p.ifindex, 0);
	}
	if (st) {
		if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
			st->c[EG_STAT_KERNEL_NO_NEIGH]++;
		else if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
			st->c[EG_STAT_KERNEL_MTU]++;
		else
			st->c[EG_STAT_KERNEL_OTHER]++;
	}
	return XDP_PASS;
}

static __always_inline int pass(struct eg_stats *st, int reason)
{
	if (st && reason >= 0 && reason < EG_STAT_MAX)
		st->c[reason]++;
	return XDP_PASS;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	__u32 zero = 0;
	struct eg_stats *st = bpf_map_lookup_elem(&eg_stats, &zero);

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return pass(st, EG_STAT_PASS_MALFORMED);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return pass(st, EG_STAT_PASS_NOT_IPV4);
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return pass(st, EG_STAT_PASS_MALFORMED);
	if (ip->ihl != 5)
		return pass(st, EG_STAT_PASS_IP_OPTIONS);
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return pass(st, EG_STAT_PASS_FRAGMENT);

	__u16 *sport, *dport, *l4check;
	int udp;
	if (ip->protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > data_end)
			return pass(st, EG_STAT_PASS_MALFORMED);
		sport = &tcp->source;
		dport = &tcp->dest;
		l4check = &tcp->check;
		udp = 0;
	} else if (ip->protocol == IPPROTO_UDP) {
		struct udphdr *uh = (void *)(ip + 1);
		if ((void *)(uh + 1) > data_end)
			return pass(st, EG_STAT_PASS_MALFORMED);
		sport = &uh->source;
		dport = &uh->dest;
		l4check = &uh->check;
		udp = 1;
	} else {
		return pass(st, EG_STAT_PASS_NOT_OURS);
	}

	struct eg_config *cfg = bpf_map_lookup_elem(&eg_config, &zero);
	if (!cfg || cfg->vip == 0)
		return pass(st, EG_STAT_PASS_NOT_OURS);

	struct eg_flow_key key = {};
	key.src = ip->saddr;
	key.dst = ip->daddr;
	key.sport = *sport;
	key.dport = *dport;
	key.proto = ip->protocol;

	__u8 proto_bit = udp ? EG_PROTO_UDP : EG_PROTO_TCP;
	if (ip->daddr == cfg->vip && *dport == cfg->port && (cfg->protocols & proto_bit)) {
		/* ---- client → VIP ---- */
		if (ip->ttl <= 1)
			return pass(st, EG_STAT_PASS_TTL);
		struct eg_backend be;
		struct eg_backend *pinned = bpf_map_lookup_elem(&eg_flows, &key);
		int fresh = 0;
		if (pinned) {
			be = *pinned;
		} else {
			__u32 gen = cfg->active & 1;
			__u32 m = cfg->table_size[gen];
			__u32 n = cfg->backend_count[gen];
			if (m == 0 || n == 0)
				return st ? (st->c[EG_STAT_DROP_NO_BACKEND]++, XDP_DROP) : XDP_DROP;
			if (!flow_admit(cfg))
				return st ? (st->c[EG_STAT_DROP_RATE_LIMITED]++, XDP_DROP) : XDP_DROP;
			__u32 slot = gen * cfg->table_stride + eg_flow_hash(&key) % m;
			__u32 *idx = bpf_map_lookup_elem(&eg_table, &slot);
			if (!idx || *idx >= n || *idx >= EG_MAX_BACKENDS)
				return st ? (st->c[EG_STAT_DROP_NO_BACKEND]++, XDP_DROP) : XDP_DROP;
			__u32 bslot = gen * EG_MAX_BACKENDS + *idx;
			struct eg_backend *b = bpf_map_lookup_elem(&eg_backends, &bslot);
			if (!b || b->addr == 0)
				return st ? (st->c[EG_STAT_DROP_NO_BACKEND]++, XDP_DROP) : XDP_DROP;
			be = *b;
			be._pad = 0;
			bpf_map_update_elem(&eg_flows, &key, &be, BPF_ANY);
			fresh = 1;
		}

		/* The reply side must know this flow too; re-created if the LRU evicted it alone. */
		struct eg_flow_key rkey = {};
		rkey.src = be.addr;
		rkey.dst = key.src;
		rkey.sport = be.port;
		rkey.dport = key.sport;
		rkey.proto = key.proto;
		if (fresh || !bpf_map_lookup_elem(&eg_replies, &rkey)) {
			struct eg_nat nat = { .vip = cfg->vip, .port = cfg->port };
			bpf_map_update_elem(&eg_replies, &rkey, &nat, BPF_ANY);
		}

		if (st) {
			st->c[EG_STAT_VIP_PACKETS]++;
			st->c[EG_STAT_VIP_BYTES] += len;
			if (fresh)
				st->c[EG_STAT_NEW_FLOWS]++;
		}
		struct eg_backend_stats *bs = bpf_map_lookup_elem(&eg_be_stats, &be);
		if (bs) {
			bs->packets++;
			bs->bytes += len;
			if (fresh)
				bs->new_flows++;
		}
		eg_rewrite(ip, &ip->daddr, dport, l4check, udp, be.addr, be.port);
		return forward(ctx, eth, ip, *sport, *dport, st);
	}

	/* ---- backend → client reply of a known flow ---- */
	struct eg_nat *nat = bpf_map_lookup_elem(&eg_replies, &key);
	if (!nat)
		return pass(st, EG_STAT_PASS_NOT_OURS);
	if (ip->ttl <= 1)
		return pass(st, EG_STAT_PASS_TTL);
	struct eg_backend bkey = { .addr = ip->saddr, .port = *sport };
	struct eg_backend_stats *bs = bpf_map_lookup_elem(&eg_be_stats, &bkey);
	if (bs) {
		bs->reply_packets++;
		bs->reply_bytes += len;
	}
	if (st) {
		st->c[EG_STAT_REPLY_PACKETS]++;
		st->c[EG_STAT_REPLY_BYTES] += len;
	}
	eg_rewrite(ip, &ip->saddr, sport, l4check, udp, nat->vip, nat->port);
	return forward(ctx, eth, ip, *sport, *dport, st);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
