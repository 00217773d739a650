/**
 * PROXY protocol v2 header (HAProxy's spec, "The PROXY protocol", section 2.2): the binary
 * form, PROXY command, TCP over IPv4 or IPv6, so the backend learns the client's address.
 */

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

export function proxyV2Header(src: Deno.NetAddr, dst: Deno.NetAddr): Uint8Array {
  const v6 = src.hostname.includes(":") || dst.hostname.includes(":");
  const addrLen = v6 ? 36 : 12;
  const out = new Uint8Array(16 + addrLen);
  out.set(SIGNATURE, 0);
  out[12] = 0x21; // version 2, command PROXY
  out[13] = v6 ? 0x21 : 0x11; // AF_INET6 or AF_INET, STREAM
  out[14] = addrLen >> 8;
  out[15] = addrLen & 0xff;
  const view = new DataView(out.buffer);
  if (v6) {
    out.set(ipv6Bytes(src.hostname), 16);
    out.set(ipv6Bytes(dst.hostname), 32);
    view.setUint16(48, src.port);
    view.setUint16(50, dst.port);
  } else {
    out.set(ipv4Bytes(src.hostname), 16);
    out.set(ipv4Bytes(dst.hostname), 20);
    view.setUint16(24, src.port);
    view.setUint16(26, dst.port);
  }
  return out;
}

function ipv4Bytes(ip: string): number[] {
  const parts = ip.split(".").map(Number);
  return parts.length === 4 && parts.every((p) => p >= 0 && p <= 255) ? parts : [0, 0, 0, 0];
}

/** Expands "::ffff:1.2.3.4", "2001:db8::1" etc. into 16 bytes. */
export function ipv6Bytes(ip: string): Uint8Array {
  const out = new Uint8Array(16);
  if (!ip.includes(":")) {
    // IPv4 in a v6 header: v4-mapped.
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(ipv4Bytes(ip), 12);
    return out;
  }
  let text = ip;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  let tail: number[] = [];
  if (dotted) {
    tail = ipv4Bytes(dotted[1]);
    text = text.slice(0, -dotted[1].length) + "0:0";
  }
  const [head, rest] = text.split("::");
  const h = head ? head.split(":") : [];
  const r = rest !== undefined && rest !== "" ? rest.split(":") : [];
  const groups = rest === undefined ? h : [...h, ...new Array(8 - h.length - r.length).fill("0"), ...r];
  groups.slice(0, 8).forEach((g, i) => {
    const v = parseInt(g || "0", 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  if (tail.length) out.set(tail, 12);
  return out;
}
