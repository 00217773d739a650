/**
 * The machinery of the h2spec-equivalent conformance tests (tests/integration/h2_conformance_*.test.ts):
 * a connection that performs h2spec's handshake, frame builders (including deliberately invalid
 * frames) and verifiers that accept exactly the outcomes h2spec accepts:
 *
 * - connectionError(codes): a GOAWAY with one of `codes`, or the connection closing.
 * - streamError(codes): a RST_STREAM or a GOAWAY with one of `codes`, or the connection closing.
 * - connectionClose(): the connection closing (whatever frames come first).
 * - streamClose(): a DATA or HEADERS frame with END_STREAM.
 * - eventType(type) / headersFrame(id) / pingAck(data): that frame arrives.
 *
 * A timeout is a failure, as in h2spec. One deviation, deliberately stricter: a GOAWAY or RST_STREAM
 * carrying an error code outside `codes` fails at once (h2spec keeps reading and would pass if the
 * connection then closed).
 *
 * Every case runs once against the h2c (prior knowledge) listener and once against the TLS listener
 * (ALPN h2), the two ways h2spec will be pointed at the gateway.
 */

import assert from "node:assert/strict";
import { configHead, startGateway } from "../helpers/gateway.ts";
import { makeCerts } from "./h2_helpers.ts";
import { RawH2 } from "../helpers/h2_raw.ts";
import { concat } from "../helpers/common.ts";
import { startOrigin } from "../helpers/origin.ts";
import {
  CONNECTION_PREFACE,
  encodeFrame,
  ErrorCode,
  errorCodeName,
  FrameType,
  type RawFrame,
  settingsFrame,
  SettingsId,
} from "../../src/http/h2/frames.ts";
import { type HeaderField, HpackEncoder } from "../../src/http/h2/hpack.ts";
import { HUFFMAN_CODES, HUFFMAN_LENGTHS, latin1ToBytes } from "../../src/http/h2/huffman.ts";

/** h2spec's per-read timeout is 2 s; a little more headroom on a busy 2-core machine. */
const TIMEOUT_MS = 3000;
/** h2spec's --max-header-length default: the value length of DummyHeaders. */
export const MAX_HEADER_LEN = 4000;
/** The body of the conformance route (h2spec skips the flow-control cases below 5 octets). */
export const BODY = "hello from the h2 conformance route\n";

export { ErrorCode, FrameType, SettingsId };

export interface Target {
  tls: boolean;
  port: number;
  caCert: string;
}

const enc = new TextEncoder();
const u32 = (v: number) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const bytes = (v: string | Uint8Array | number[]) =>
  typeof v === "string" ? enc.encode(v) : v instanceof Uint8Array ? v : new Uint8Array(v);

export const concatBytes = (...parts: Uint8Array[]): Uint8Array => concat(parts);

/**
 * A frame from a raw 9-octet header (e.g. a reserved bit or a wrong length) and a payload, as two
 * writes — h2spec sends these with two conn.Send calls.
 */
export function rawFrame(header: number[], payload: number[] | Uint8Array = []): Uint8Array[] {
  return [new Uint8Array(header), bytes(payload)];
}

export interface HeadersOpts {
  endStream?: boolean;
  endHeaders?: boolean;
  /** PADDED with this many octets of padding. */
  padLength?: number;
  /** PRIORITY fields. */
  priority?: { dep: number; weight: number; exclusive?: boolean };
}

export function headersFrame(id: number, block: Uint8Array, o: HeadersOpts = {}): Uint8Array {
  const endStream = o.endStream ?? true;
  const endHeaders = o.endHeaders ?? true;
  let flags = (endStream ? 0x1 : 0) | (endHeaders ? 0x4 : 0);
  const parts: Uint8Array[] = [];
  if (o.padLength !== undefined) {
    flags |= 0x8;
    parts.push(new Uint8Array([o.padLength]));
  }
  if (o.priority) {
    flags |= 0x20;
    const dep = (o.priority.dep | (o.priority.exclusive ? 0x80000000 : 0)) >>> 0;
    parts.push(new Uint8Array([...u32(dep), o.priority.weight]));
  }
  parts.push(block);
  if (o.padLength !== undefined) parts.push(new Uint8Array(o.padLength));
  return encodeFrame(FrameType.HEADERS, flags, id, concatBytes(...parts));
}

export function dataFrame(
  id: number,
  data: string | Uint8Array,
  endStream: boolean,
  pad?: string,
): Uint8Array {
  const d = bytes(data);
  if (pad === undefined) return encodeFrame(FrameType.DATA, endStream ? 1 : 0, id, d);
  const p = bytes(pad);
  return encodeFrame(
    FrameType.DATA,
    (endStream ? 1 : 0) | 0x8,
    id,
    concatBytes(new Uint8Array([p.length]), d, p),
  );
}

export function continuationFrame(id: number, endHeaders: boolean, block: Uint8Array): Uint8Array {
  return encodeFrame(FrameType.CONTINUATION, endHeaders ? 0x4 : 0, id, block);
}

export function priorityFrame(id: number, dep: number, weight: number, exclusive = false): Uint8Array {
  const d = (dep | (exclusive ? 0x80000000 : 0)) >>> 0;
  return encodeFrame(FrameType.PRIORITY, 0, id, new Uint8Array([...u32(d), weight]));
}

export const rstFrame = (id: number, code: number): Uint8Array =>
  encodeFrame(FrameType.RST_STREAM, 0, id, new Uint8Array(u32(code)));

export const settings = (...entries: [number, number][]): Uint8Array => settingsFrame(entries);

export const pingFrame = (ack: boolean, data: Uint8Array = new Uint8Array(8)): Uint8Array =>
  encodeFrame(FrameType.PING, ack ? 1 : 0, 0, data);

export const goawayFrame = (last: number, code: number, debug = ""): Uint8Array =>
  encodeFrame(
    FrameType.GOAWAY,
    0,
    0,
    concatBytes(new Uint8Array([...u32(last), ...u32(code)]), bytes(debug)),
  );

export const windowUpdateFrame = (id: number, increment: number): Uint8Array =>
  encodeFrame(FrameType.WINDOW_UPDATE, 0, id, new Uint8Array(u32(increment)));

/** Eight octets "h2spec\0\0", h2spec's PING payload. */
export const PING_DATA = new Uint8Array([0x68, 0x32, 0x73, 0x70, 0x65, 0x63, 0, 0]);

/** Huffman coding of a latin1 string (RFC 7541 §5.2), optionally with extra raw codes appended. */
export function huffman(s: string, opts: { insertEosAfter?: number } = {}): Uint8Array {
  const symbols = [...latin1ToBytes(s)];
  if (opts.insertEosAfter !== undefined) symbols.splice(opts.insertEosAfter, 0, 256);
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const sym of symbols) {
    const code = HUFFMAN_CODES[sym];
    for (let i = HUFFMAN_LENGTHS[sym] - 1; i >= 0; i--) {
      acc = (acc << 1) | ((code >>> i) & 1);
      if (++bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push(((acc << (8 - bits)) | ((1 << (8 - bits)) - 1)) & 0xff); // EOS-prefix padding
  return new Uint8Array(out);
}

/** An HPACK string literal (RFC 7541 §5.2): raw, or `huffmanBytes` with the H bit. */
export function hpackString(s: string | { huffman: Uint8Array }): Uint8Array {
  if (typeof s === "string") return concatBytes(hpackInt(s.length, 7, 0), latin1ToBytes(s));
  return concatBytes(hpackInt(s.huffman.length, 7, 0x80), s.huffman);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the pattern bits. */
export function hpackInt(v: number, prefix: number, first: number): Uint8Array {
  const max = (1 << prefix) - 1;
  if (v < max) return new Uint8Array([first | v]);
  const out = [first | max];
  v -= max;
  while (v >= 128) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return new Uint8Array(out);
}

/** One connection to the gateway, driven like h2spec's spec.Conn. */
export class SpecConn {
  /** The server's SETTINGS from the handshake. */
  readonly serverSettings = new Map<number, number>();
  readonly #encoder = new HpackEncoder({ huffman: true });
  private constructor(readonly raw: RawH2, readonly target: Target) {}

  static async open(target: Target): Promise<SpecConn> {
    const raw = await RawH2.connect(target.port, {
      handshake: false,
      tls: target.tls ? { caCert: target.caCert } : undefined,
    });
    return new SpecConn(raw, target);
  }

  /** h2spec's Handshake(): preface + SETTINGS(INITIAL_WINDOW_SIZE=65535), then both SETTINGS exchanged. */
  async handshake(): Promise<void> {
    await this.send(CONNECTION_PREFACE, settings([SettingsId.INITIAL_WINDOW_SIZE, 65535]));
    let local = false, remote = false;
    const deadline = Date.now() + TIMEOUT_MS;
    while (!(local && remote)) {
      const f = await this.raw.next(Math.max(1, deadline - Date.now()));
      if (!f || f === "closed") throw new Error(`handshake failed: ${f ?? "timeout"}`);
      if (f.header.type !== FrameType.SETTINGS) continue;
      if (f.header.flags & 1) local = true;
      else {
        remote = true;
        for (let o = 0; o + 6 <= f.payload.length; o += 6) {
          const p = f.payload;
          this.serverSettings.set(
            (p[o] << 8) | p[o + 1],
            ((p[o + 2] << 24) | (p[o + 3] << 16) | (p[o + 4] << 8) | p[o + 5]) >>> 0,
          );
        }
        await this.send(encodeFrame(FrameType.SETTINGS, 1, 0));
      }
    }
  }

  /** One write per frame (and per piece of a rawFrame), as h2spec's framer does. */
  send(...parts: (Uint8Array | Uint8Array[])[]): Promise<void> {
    return this.raw.send(...parts.flat());
  }

  /** The request pseudo-headers h2spec's CommonHeaders() uses. */
  common(method = "GET"): HeaderField[] {
    return [
      [":method", method],
      [":scheme", this.target.tls ? "https" : "http"],
      [":path", "/"],
      [":authority", `127.0.0.1:${this.target.port}`],
    ];
  }

  /** h2spec's DummyHeaders(n): x-dummyN fields with MAX_HEADER_LEN-octet values. */
  dummy(n: number): HeaderField[] {
    return Array.from({ length: n }, (_, i) => [`x-dummy${i}`, "x".repeat(MAX_HEADER_LEN)] as HeaderField);
  }

  /**
   * A header block from the connection's encoder, which — like the Go encoder h2spec uses — indexes
   * fields into its dynamic table (carried over between blocks) and Huffman-codes strings.
   */
  encode(fields: HeaderField[]): Uint8Array {
    return this.#encoder.encode(fields);
  }

  get maxFrameSize(): number {
    return this.serverSettings.get(SettingsId.MAX_FRAME_SIZE) ?? 16384;
  }

  close(): void {
    this.raw.close();
  }

  /** Next frame, "closed", or "timeout". Bytes that are not frames (e.g. an HTTP/1.1 reply) are skipped. */
  async event(deadline: number): Promise<RawFrame | "closed" | "timeout"> {
    try {
      const f = await this.raw.next(Math.max(1, deadline - Date.now()));
      return f ?? "timeout";
    } catch {
      // Unparseable bytes: only a close can still be verified; drain until it comes.
      const buf = new Uint8Array(4096);
      for (;;) {
        const left = deadline - Date.now();
        if (left <= 0) return "timeout";
        let timer: ReturnType<typeof setTimeout> | undefined;
        const n = await Promise.race([
          this.raw.conn.read(buf).catch(() => null),
          new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), left)),
        ]);
        clearTimeout(timer);
        if (n === "timeout") return "timeout";
        if (n === null) return "closed";
      }
    }
  }

  /** Reads frames until `match` returns true (pass) or a string (failure), or close/timeout. */
  async #until(
    what: string,
    match: (f: RawFrame) => boolean | string,
    onClose: boolean | string = `connection closed before ${what}`,
  ): Promise<RawFrame | undefined> {
    const deadline = Date.now() + TIMEOUT_MS;
    const seen: string[] = [];
    for (;;) {
      const f = await this.event(deadline);
      if (f === "closed") {
        if (onClose === true) return undefined;
        assert.fail(
          `${onClose === false ? `connection closed before ${what}` : onClose}; saw ${seen.join(", ")}`,
        );
      }
      if (f === "timeout") assert.fail(`timed out waiting for ${what}; saw [${seen.join(", ")}]`);
      seen.push(describe(f));
      const m = match(f);
      if (m === true) return f;
      if (typeof m === "string") assert.fail(`${m} (expected ${what}); saw [${seen.join(", ")}]`);
    }
  }

  /** h2spec VerifyConnectionError: GOAWAY with one of `codes`, or the connection closed. */
  async connectionError(...codes: number[]): Promise<void> {
    const what = `GOAWAY(${codes.map(errorCodeName).join("|")}) or close`;
    await this.#until(what, (f) => {
      if (f.header.type !== FrameType.GOAWAY) return false;
      const code = codeOf(f);
      return codes.includes(code) || `GOAWAY(${errorCodeName(code)})`;
    }, true);
  }

  /** h2spec VerifyStreamError: RST_STREAM or GOAWAY with one of `codes`, or the connection closed. */
  async streamError(...codes: number[]): Promise<void> {
    const what = `RST_STREAM/GOAWAY(${codes.map(errorCodeName).join("|")}) or close`;
    await this.#until(what, (f) => {
      if (f.header.type !== FrameType.GOAWAY && f.header.type !== FrameType.RST_STREAM) return false;
      const code = codeOf(f);
      return codes.includes(code) ||
        `${f.header.type === FrameType.GOAWAY ? "GOAWAY" : "RST_STREAM"}(${errorCodeName(code)})`;
    }, true);
  }

  /** h2spec VerifyConnectionClose. */
  async connectionClose(): Promise<void> {
    await this.#until("connection close", () => false, true);
  }

  /** h2spec VerifyStreamClose: DATA or HEADERS with END_STREAM. */
  async streamClose(): Promise<void> {
    await this.#until(
      "END_STREAM",
      (f) =>
        (f.header.type === FrameType.DATA || f.header.type === FrameType.HEADERS) &&
        (f.header.flags & 1) !== 0,
    );
  }

  /** h2spec VerifyEventType / WaitEventByType: a frame of `type` arrives. */
  eventType(type: number): Promise<RawFrame | undefined> {
    return this.#until(`a ${typeName(type)} frame`, (f) => f.header.type === type);
  }

  /** h2spec VerifyHeadersFrame: a HEADERS frame on `id`. */
  async headersFrame(id: number): Promise<void> {
    await this.#until(
      `HEADERS on stream ${id}`,
      (f) => f.header.type === FrameType.HEADERS && f.header.streamId === id,
    );
  }

  /** h2spec VerifyPingFrameWithAck (or, with `orClose`, VerifyPingFrameOrConnectionClose). */
  async pingAck(data: Uint8Array, orClose = false): Promise<void> {
    await this.#until(
      "PING ACK with the same payload",
      (f) => f.header.type === FrameType.PING && (f.header.flags & 1) === 1 && sameBytes(f.payload, data),
      orClose ? true : false,
    );
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The error code of a GOAWAY or RST_STREAM frame. */
export function codeOf(f: RawFrame): number {
  const o = f.header.type === FrameType.GOAWAY ? 4 : 0;
  const p = f.payload;
  return ((p[o] << 24) | (p[o + 1] << 16) | (p[o + 2] << 8) | p[o + 3]) >>> 0;
}

function typeName(t: number): string {
  return Object.entries(FrameType).find(([, v]) => v === t)?.[0] ?? `0x${t.toString(16)}`;
}

function describe(f: RawFrame): string {
  const h = f.header;
  let s = `${typeName(h.type)}(stream ${h.streamId}, flags 0x${
    h.flags.toString(16)
  }, len ${f.payload.length}`;
  if (h.type === FrameType.GOAWAY || h.type === FrameType.RST_STREAM) s += `, ${errorCodeName(codeOf(f))}`;
  return s + ")";
}

/** One h2spec case: its section/number, its description, and what it sends and verifies. */
export interface SpecCase {
  /** "http2/6.5.3/1", "generic/3.1/2", "hpack/5.2/1" — h2spec's group/section/number. */
  id: string;
  desc: string;
  /** Without the handshake (3.5 sends its own preface). */
  noHandshake?: boolean;
  run(c: SpecConn): Promise<void>;
}

/**
 * Starts one gateway and an HTTP/1.1 origin, and runs every case, one connection each, against four
 * listeners: h2c (prior knowledge) and TLS (ALPN h2), each once with a `respond` route (BODY) and
 * once proxying to the origin — h2spec will be pointed at proxying listeners, whose responses take
 * the other send path.
 */
export async function runSpec(t: Deno.TestContext, cases: SpecCase[]): Promise<void> {
  const certs = await makeCerts();
  const origin = await startOrigin("h2spec-origin");
  const tls = `tls = { cert = "${certs.cert}", key = "${certs.key}" }`;
  const listener = (name: string, protocol: string, route: string) => `
[[listeners]]
name = "${name}"
bind = "127.0.0.1:0"
protocol = "${protocol}"
${protocol === "https" ? tls : ""}
  [[listeners.routes]]
  ${route}
`;
  const respond = `respond = { status = 200, body = ${JSON.stringify(BODY)} }`;
  const gw = await startGateway(`${configHead()}${listener("h2c", "http", respond)}
${listener("h2", "https", respond)}
${listener("h2c_proxy", "http", `pool = "origin"`)}
${listener("h2_proxy", "https", `pool = "origin"`)}
[[pools]]
name = "origin"
  [[pools.backends]]
  address = "${origin.address}"
`);
  const caCert = await Deno.readTextFile(certs.ca);
  try {
    for (const name of ["h2c", "h2", "h2c_proxy", "h2_proxy"]) {
      const target: Target = { tls: name.startsWith("h2_") || name === "h2", port: gw.ports[name], caCert };
      for (const c of cases) {
        await t.step(`${name.padEnd(9)} ${c.id}: ${c.desc}`, async () => {
          const conn = await SpecConn.open(target);
          try {
            if (!c.noHandshake) await conn.handshake();
            await c.run(conn);
          } finally {
            conn.close();
          }
        });
      }
    }
  } finally {
    assert.equal(await gw.stop(), 0);
    await origin.stop();
    await Deno.remove(certs.dir, { recursive: true }).catch(() => {});
  }
}
