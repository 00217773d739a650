/**
 * Active probes: one bounded attempt each, on a fresh connection (never a pooled one, so a
 * probe measures what a new request would meet), over the backend's own TLS settings.
 *   http: a request with `Connection: close`, status in the expected ranges, optional body
 *         substring (first 64 KiB only);
 *   tcp:  the connect (and TLS handshake) succeeds.
 */

import { findHeadEnd, newScanState, parseResponseHead } from "../http/h1/parse.ts";
import { ConnReader } from "../http/h1/reader.ts";
import { type ConnectTarget, openConnection } from "../net/connect.ts";

export interface HttpProbeSpec {
  kind: "http";
  method: string;
  path: string;
  host: string;
  expected: Array<[number, number]>;
  bodyContains?: string;
}

export type ProbeSpec = HttpProbeSpec | { kind: "tcp" };

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

const MAX_PROBE_BODY = 64 * 1024;

export async function runProbe(
  target: ConnectTarget,
  spec: ProbeSpec,
  timeoutMs: number,
): Promise<ProbeResult> {
  const deadline = performance.now() + timeoutMs;
  let conn: Deno.Conn;
  try {
    conn = await openConnection(target, timeoutMs);
  } catch (e) {
    return { ok: false, detail: e instanceof Error ? e.message : String(e) };
  }
  if (spec.kind === "tcp") {
    closeQuietly(conn);
    return { ok: true, detail: "connected" };
  }
  const timer = setTimeout(() => closeQuietly(conn), Math.max(1, deadline - performance.now()));
  try {
    const req =
      `${spec.method} ${spec.path} HTTP/1.1\r\nhost: ${spec.host}\r\nuser-agent: expressgateway-health\r\n` +
      `accept: */*\r\nconnection: close\r\n\r\n`;
    const bytes = new TextEncoder().encode(req);
    let off = 0;
    while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    const r = new ConnReader(conn);
    const st = newScanState();
    let len: number;
    for (;;) {
      len = findHeadEnd(r.buf, r.start, r.end, st, { maxLine: 8192, maxHead: 65536 }, false);
      if (len >= 0) break;
      if (!(await r.fill())) return { ok: false, detail: "connection closed before a response" };
    }
    const head = parseResponseHead(r.buf, r.start + st.skip, r.start + len);
    r.start += len;
    const inRange = spec.expected.some(([lo, hi]) => head.status >= lo && head.status <= hi);
    if (!inRange) return { ok: false, detail: `status ${head.status}` };
    if (spec.bodyContains === undefined) return { ok: true, detail: `status ${head.status}` };
    // Connection: close lets us read until EOF, bounded; chunk framing bytes may sit in
    // between, which is harmless for a substring search over a small body.
    let body = new TextDecoder().decode(r.buf.subarray(r.start, r.end));
    while (body.length < MAX_PROBE_BODY && !body.includes(spec.bodyContains)) {
      r.start = r.end;
      if (!(await r.fill())) break;
      body += new TextDecoder().decode(r.buf.subarray(r.start, r.end));
    }
    return body.includes(spec.bodyContains)
      ? { ok: true, detail: `status ${head.status}, body matched` }
      : { ok: false, detail: `status ${head.status}, body lacks ${JSON.stringify(spec.bodyContains)}` };
  } catch (e) {
    const late = performance.now() >= deadline;
    return {
      ok: false,
      detail: late ? `timed out after ${timeoutMs}ms` : e instanceof Error ? e.message : String(e),
    };
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

/** "200-399,404" → [[200,399],[404,404]]; undefined when malformed. */
export function parseStatusRanges(text: string): Array<[number, number]> | undefined {
  const out: Array<[number, number]> = [];
  for (const part of text.split(",")) {
    const m = /^\s*(\d{3})(?:\s*-\s*(\d{3}))?\s*$/.exec(part);
    if (!m) return undefined;
    const lo = Number(m[1]), hi = Number(m[2] ?? m[1]);
    if (lo < 100 || hi > 599 || lo > hi) return undefined;
    out.push([lo, hi]);
  }
  return out.length ? out : undefined;
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch { /* already closed */ }
}
