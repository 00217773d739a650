/**
 * Pieces shared by the fuzz tests (unit: tests/unit/h1/parse.test.ts, tests/unit/h3/qpack.test.ts;
 * live: tests/attacks/wire_fuzz.test.ts, h3_wire_fuzz.test.ts, h3_backend_fuzz.test.ts): byte mutation, test
 * servers (a hostile HTTP/1.1 backend that answers each request with a chosen, mutated,
 * response), and running rounds in batches.
 */

export const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

/** Octets HTTP grammars care about (line ends, separators, bounds of the classes). */
export const SPECIAL_OCTETS: readonly number[] = [0x00, 0x0a, 0x0d, 0x20, 0x3a, 0x30, 0x7f, 0x80, 0xff];

/**
 * 1–3 random edits from `from` on: overwrite, insert, delete, duplicate a slice, or cut short.
 * A share `specialShare` of the octets written are from `special` (what the grammar under test
 * branches on), the rest any octet.
 */
export function mutate(
  src: Uint8Array,
  rand: () => number,
  from = 0,
  special: readonly number[] = SPECIAL_OCTETS,
  specialShare = 0.5,
): Uint8Array {
  let b = Array.from(src);
  const edits = 1 + Math.floor(rand() * 3);
  for (let e = 0; e < edits && b.length > from; e++) {
    const at = from + Math.floor(rand() * (b.length - from));
    const byte = rand() < specialShare
      ? special[Math.floor(rand() * special.length)]
      : Math.floor(rand() * 256);
    const op = Math.floor(rand() * 5);
    if (op === 0) b[at] = byte;
    else if (op === 1) b.splice(at, 0, byte);
    else if (op === 2) b.splice(at, 1);
    else if (op === 3) b.splice(at, 0, ...b.slice(at, at + 1 + Math.floor(rand() * 16)));
    else b = b.slice(0, Math.max(at, from));
  }
  return Uint8Array.from(b);
}

/** A TCP server on a free loopback port: each connection to `serve`, closed when it returns. */
export interface TestServer {
  address: string;
  /** Stops accepting and closes every connection still open. */
  stop(): Promise<void>;
}

export function serveConnections(serve: (conn: Deno.Conn) => Promise<void>): TestServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const close = (c: Deno.Conn) => {
    try {
      c.close();
    } catch { /* closed */ }
  };
  const handle = async (conn: Deno.Conn) => {
    open.add(conn);
    try {
      await serve(conn);
    } catch {
      /* the gateway closed it, or sent what the test server refuses: that ends this one */
    } finally {
      open.delete(conn);
      close(conn);
    }
  };
  const accepting = (async () => {
    for await (const c of listener) handle(c);
  })().catch(() => {});
  return {
    address: `127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    async stop() {
      listener.close();
      for (const c of open) close(c);
      await accepting;
    },
  };
}

/** Writes all of `b`. */
export async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  let off = 0;
  while (off < b.length) off += await conn.write(b.subarray(off));
}

/**
 * A hostile backend: for `GET /r/N` it writes response N of `responses` (mutated) and closes,
 * or holds the connection open when N is in `hold` (the gateway's response timeout must end
 * it); `GET /clean` gets a valid answer.
 */
export function hostileBackend(responses: Uint8Array[], hold: Set<number>): TestServer {
  return serveConnections(async (conn) => {
    let head = "";
    const buf = new Uint8Array(16 * 1024);
    while (!head.includes("\r\n\r\n") && head.length < 64 * 1024) {
      const n = await conn.read(buf);
      if (n === null) return;
      head += String.fromCharCode(...buf.subarray(0, n));
    }
    const m = /^GET \/r\/(\d+) /.exec(head);
    await writeAll(
      conn,
      m ? responses[Number(m[1])] : latin1("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nclean\n"),
    );
    if (m && hold.has(Number(m[1]))) await new Promise((r) => setTimeout(r, 3000));
  });
}

/**
 * `rounds` mutated copies of h1ResponseSeeds() (seeded), and the rounds whose connection the
 * backend holds open after answering (one in ten).
 */
export function mutatedResponses(
  rounds: number,
  rand: () => number,
): { responses: Uint8Array[]; hold: Set<number> } {
  const seeds = h1ResponseSeeds();
  return {
    responses: Array.from({ length: rounds }, (_, i) => mutate(seeds[i % seeds.length], rand)),
    hold: new Set(Array.from({ length: rounds }, (_, i) => i).filter((i) => i % 10 === 7)),
  };
}

/** Runs rounds 0‥rounds-1 `concurrency` at a time; `check` sees each result with its round. */
export async function inBatches<T>(
  rounds: number,
  concurrency: number,
  run: (n: number) => Promise<T>,
  check: (n: number, result: T) => void,
): Promise<void> {
  for (let first = 0; first < rounds; first += concurrency) {
    const ns = Array.from({ length: Math.min(concurrency, rounds - first) }, (_, i) => first + i);
    const results = await Promise.all(ns.map(run));
    results.forEach((r, i) => check(ns[i], r));
  }
}

/** What `p` settles to, or `late` if it has not within `ms` (the timer is cleared either way). */
export async function within<T>(p: Promise<T>, ms: number, late: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<T>((r) => timer = setTimeout(() => r(late), ms))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Counts `key` in `counts`. */
export function tally(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Valid HTTP/1.1 responses of every framing: length, chunked with trailers, interim, close-delimited, bodiless. */
export function h1ResponseSeeds(): Uint8Array[] {
  return [
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5;e=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: abc\r\n\r\n",
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n",
    "HTTP/1.0 200 OK\r\nServer: old\r\n\r\nthe body runs until the connection closes",
    'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\nContent-Length: 5\r\n\r\n',
    "HTTP/1.1 302 Found\r\nLocation: /x\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
  ].map(latin1);
}
