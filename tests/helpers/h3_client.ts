/**
 * A small HTTP/3 client for tests and the benchmark, on the project's QUIC engine
 * (src/quic/engine.ts → Deno.connectQuic) and its HTTP/3 framing and QPACK modules. It
 * advertises a QPACK table capacity of 0, so servers answer with static references and
 * literals only. Besides whole requests it exposes raw streams, so tests can send malformed
 * frames and observe the connection close code the server answers with, and CONNECT streams
 * (RFC 9220 extended CONNECT, plain CONNECT) as an H3Tunnel of DATA payloads both ways.
 */

import {
  connectQuic,
  type QuicBidiStream,
  type QuicClientEndpoint,
  type QuicConnection,
  type QuicSendStream,
  QuicServer,
  type QuicServerOptions,
} from "../../src/quic/engine.ts";
import {
  encodeFrame,
  encodeSettings,
  FrameReader,
  FrameType,
  parseSettings,
  parseSingleVarint,
  Setting,
  StreamType,
} from "../../src/http/h3/frames.ts";
import { encodeFieldSection, type HeaderField, QpackDecoder } from "../../src/http/h3/qpack.ts";

export interface H3Response {
  status: number;
  /** Regular fields, in order, names lower-case. */
  headers: Array<[string, string]>;
  body: Uint8Array;
  /** Body bytes received (also when discardBody kept none). */
  bodyLength: number;
  trailers: Array<[string, string]>;
  /** Interim (1xx) statuses seen before the final one. */
  interim: number[];
}

export interface H3RequestInit {
  method?: string;
  path: string;
  authority?: string;
  scheme?: string;
  headers?: Array<[string, string]>;
  body?: Uint8Array | AsyncIterable<Uint8Array>;
  trailers?: Array<[string, string]>;
  /** Count the response body without keeping it (big downloads, benchmarks). */
  discardBody?: boolean;
}

export interface H3ConnectInit {
  /** `:protocol` of an extended CONNECT (RFC 9220), e.g. "websocket"; absent: a plain CONNECT. */
  protocol?: string;
  /** `:path` (extended CONNECT only). */
  path?: string;
  authority?: string;
  scheme?: string;
  headers?: Array<[string, string]>;
  /** Send exactly these fields instead (malformed-request tests). */
  fields?: HeaderField[];
}

/**
 * A CONNECT stream after its response HEADERS: read() yields DATA payload pieces (a view valid until
 * the next read, null at FIN), write() sends one DATA frame, finish() sends FIN. Nothing is read
 * from QUIC unless read() is called, so a test can stall the server with flow control.
 */
export class H3Tunnel {
  #remaining = 0;
  constructor(
    readonly stream: QuicBidiStream,
    readonly reader: FrameReader,
    readonly status: number,
    readonly headers: Array<[string, string]>,
  ) {}

  async read(): Promise<Uint8Array | null> {
    const r = this.reader;
    for (;;) {
      if (this.#remaining > 0) {
        const part = await r.some(this.#remaining);
        this.#remaining -= part.length;
        return part;
      }
      const h = await r.frameHeader();
      if (h === null) return null;
      if (h.type === FrameType.DATA) this.#remaining = h.length;
      else if (h.type === FrameType.HEADERS) {
        throw new Error("HEADERS on a CONNECT stream after its response");
      } else await r.discard(h.length);
    }
  }

  write(bytes: Uint8Array): Promise<void> {
    return this.stream.send.write(H3Client.dataFrame(bytes));
  }

  /** Raw bytes on the stream (frames of the test's own making). */
  writeRaw(bytes: Uint8Array): Promise<void> {
    return this.stream.send.write(bytes);
  }

  closeWrite(): Promise<void> {
    return this.stream.send.finish();
  }
}

export class H3Client {
  #control: QuicSendStream | undefined;
  /** The server's SETTINGS once received. */
  settings: Map<number, number> | undefined;
  /** Stream id of the server's last GOAWAY, if any. */
  goaway: number | undefined;
  readonly #decoder = new QpackDecoder({
    maxTableCapacity: 0,
    maxBlockedStreams: 0,
    maxFieldSectionSize: 1 << 20,
  });

  private constructor(
    readonly conn: QuicConnection,
    readonly authority: string,
    /** Returned before the handshake completed (0-RTT): what is sent now is early data. */
    readonly early: boolean,
  ) {}

  static async connect(opts: {
    port: number;
    ca: string;
    host?: string;
    serverName?: string;
    /** Skip opening our control stream (tests of the server's critical-stream rules). */
    noControl?: boolean;
    /** A shared client endpoint (TLS resumption, 0-RTT on later connections). */
    endpoint?: QuicClientEndpoint;
    zeroRtt?: boolean;
  }): Promise<H3Client> {
    const { conn, early } = await connectQuic({
      endpoint: opts.endpoint,
      zeroRtt: opts.zeroRtt,
      hostname: opts.host ?? "127.0.0.1",
      port: opts.port,
      serverName: opts.serverName ?? "localhost",
      caCerts: [opts.ca],
      alpn: ["h3"],
      maxIdleTimeoutMs: 30_000,
    });
    const c = new H3Client(conn, `${opts.serverName ?? "localhost"}:${opts.port}`, early);
    if (!opts.noControl) await c.openControl();
    // The server's unidirectional streams: its control stream is parsed (SETTINGS, GOAWAY),
    // anything else (QPACK streams) read and dropped.
    (async () => {
      for (;;) {
        const s = await conn.acceptUni();
        if (!s) return;
        const r = new FrameReader(s, 4096);
        (async () => {
          try {
            const type = await r.varint();
            if (type === StreamType.CONTROL) {
              for (;;) {
                const h = await r.frameHeader();
                if (!h) return;
                const p = await r.payload(h.length);
                if (h.type === FrameType.SETTINGS) c.settings = parseSettings(p);
                else if (h.type === FrameType.GOAWAY) c.goaway = parseSingleVarint(p, "GOAWAY");
              }
            }
            while (await r.more()) r.start = r.end;
          } catch { /* closed */ }
        })();
      }
    })();
    return c;
  }

  /** Our control stream with SETTINGS (QPACK capacity 0). */
  async openControl(extra: Uint8Array[] = []): Promise<QuicSendStream> {
    const s = await this.conn.openUni();
    await s.write(Uint8Array.of(StreamType.CONTROL));
    await s.write(encodeSettings([[Setting.MAX_FIELD_SECTION_SIZE, 1 << 20]]));
    for (const e of extra) await s.write(e);
    this.#control = s;
    return s;
  }

  get control(): QuicSendStream | undefined {
    return this.#control;
  }

  /** Resolves with the close code once the connection is closed (by either side). */
  closed(): Promise<{ code: number; reason: string; local: boolean }> {
    return this.conn.closed;
  }

  /** Opens a raw request stream. */
  openStream(): Promise<QuicBidiStream> {
    return this.conn.openBidi();
  }

  /** HEADERS frame for a request. */
  static headersFrame(fields: HeaderField[]): Uint8Array {
    return encodeFrame(FrameType.HEADERS, encodeFieldSection(fields));
  }

  static dataFrame(bytes: Uint8Array): Uint8Array {
    return encodeFrame(FrameType.DATA, bytes);
  }

  async request(init: H3RequestInit): Promise<H3Response> {
    const s = await this.conn.openBidi();
    const fields: HeaderField[] = [
      [":method", init.method ?? "GET"],
      [":scheme", init.scheme ?? "https"],
      [":authority", init.authority ?? this.authority],
      [":path", init.path],
      ...(init.headers ?? []),
    ];
    const sending = (async () => {
      await s.send.write(H3Client.headersFrame(fields));
      if (init.body instanceof Uint8Array) {
        if (init.body.length > 0) await s.send.write(H3Client.dataFrame(init.body));
      } else if (init.body) {
        for await (const chunk of init.body) await s.send.write(H3Client.dataFrame(chunk));
      }
      if (init.trailers) await s.send.write(H3Client.headersFrame(init.trailers));
      await s.send.finish();
    })();
    const response = this.readResponse(s, init.discardBody);
    await sending;
    return await response;
  }

  /**
   * Opens a CONNECT stream (no FIN) and waits for its final response HEADERS. The tunnel is
   * returned whatever the status; for a refusal its read() yields the response body.
   */
  async connect(init: H3ConnectInit): Promise<H3Tunnel> {
    const s = await this.conn.openBidi();
    const fields: HeaderField[] = init.fields ?? [
      [":method", "CONNECT"],
      ...(init.protocol === undefined ? [] : [
        [":protocol", init.protocol] as HeaderField,
        [":scheme", init.scheme ?? "https"] as HeaderField,
        [":path", init.path ?? "/"] as HeaderField,
      ]),
      [":authority", init.authority ?? this.authority],
      ...(init.headers ?? []),
    ];
    await s.send.write(H3Client.headersFrame(fields));
    const r = new FrameReader(s.recv);
    for (;;) {
      const h = await r.frameHeader();
      if (h === null) throw new Error("CONNECT stream ended before its response");
      if (h.type !== FrameType.HEADERS) {
        await r.discard(h.length);
        continue;
      }
      const d = this.#decoder.decode(await r.payload(h.length), Number(s.recv.id));
      if (!("fields" in d) || !d.fields) throw new Error("response field section could not be decoded");
      const status = Number(d.fields.find((f) => f[0] === ":status")?.[1] ?? "0");
      if (status < 200) continue;
      const headers = d.fields.filter((f) => !f[0].startsWith(":")).map((f) =>
        [f[0], f[1]] as [string, string]
      );
      return new H3Tunnel(s, r, status, headers);
    }
  }

  /** Reads HEADERS (after any 1xx), DATA and trailers until FIN. */
  async readResponse(s: QuicBidiStream, discardBody = false): Promise<H3Response> {
    const r = new FrameReader(s.recv);
    const out: H3Response = {
      status: 0,
      headers: [],
      body: new Uint8Array(0),
      bodyLength: 0,
      trailers: [],
      interim: [],
    };
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const h = await r.frameHeader();
      if (h === null) break;
      if (h.type === FrameType.HEADERS) {
        const d = this.#decoder.decode(await r.payload(h.length), Number(s.recv.id));
        if (!("fields" in d) || !d.fields) throw new Error("response field section could not be decoded");
        const fields = d.fields.map((f) => [f[0], f[1]] as [string, string]);
        if (out.status === 0) {
          const st = Number(fields.find((f) => f[0] === ":status")?.[1] ?? "0");
          if (st >= 100 && st < 200) {
            out.interim.push(st);
            continue;
          }
          out.status = st;
          out.headers = fields.filter((f) => !f[0].startsWith(":"));
        } else out.trailers = fields;
      } else if (h.type === FrameType.DATA) {
        let left = h.length;
        while (left > 0) {
          const part = await r.some(left);
          left -= part.length;
          size += part.length;
          if (!discardBody) chunks.push(part.slice());
        }
      } else await r.discard(h.length);
    }
    if (discardBody) out.body = new Uint8Array(0);
    else {
      const body = new Uint8Array(size);
      let o = 0;
      for (const c of chunks) {
        body.set(c, o);
        o += c.length;
      }
      out.body = body;
    }
    out.bodyLength = size;
    return out;
  }

  close(): void {
    this.conn.close(0x100, "");
  }
}

export function header(res: H3Response, name: string): string | undefined {
  return res.headers.find((h) => h[0] === name)?.[1];
}

/** A CA and a localhost leaf signed by it (scripts/pki.ts); Deno's QUIC client needs the chain. */
export { makeTestPki } from "../../scripts/pki.ts";

/** A QUIC server on a free loopback port for a test's own peers, with a leaf certificate's files. */
export async function bindTestQuicServer(
  files: { cert: string; key: string },
  alpn: string[],
  opts: Partial<QuicServerOptions> = {},
): Promise<QuicServer> {
  return QuicServer.bind({
    hostname: "127.0.0.1",
    port: 0,
    cert: await Deno.readTextFile(files.cert),
    key: await Deno.readTextFile(files.key),
    alpn,
    maxIdleTimeoutMs: 10_000,
    ...opts,
  });
}
