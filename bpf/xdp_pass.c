// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/*
 * xdp_pass: returns XDP_PASS for every packet. A veth only accepts native XDP redirects
 * (ndo_xdp_xmit) when its peer runs an XDP program (or has GRO on), so the XDP tests and the
 * benchmark attach this to the far end of every veth that receives redirected packets.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
