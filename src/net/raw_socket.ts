/**
 * Socket reads and writes without the async functions Deno wraps around them.
 *
 * Why: `Deno.Conn.read()` is an async method around the runtime's read op. It awaits the op's
 * promise, keeps it in a Set meanwhile (for ref/unref), and maps 0 to null. `write()` calls an
 * async function that awaits the write op. Each wrapper costs a second promise, a generator and a
 * resumption per call (the read also a Set insert and delete). An HTTP/1.1 request makes two reads
 * and two writes, so that is four promise hops per request that do nothing for us. Calling the ops
 * directly (`core.read(rid, buf)` and `core.write(rid, buf)`, the calls inside those wrappers)
 * skips them. The read resolves to the byte count, 0 at EOF; the write to the bytes written; both
 * reject as the wrappers do. One thing the wrappers do is lost: `conn.unref()` cannot unref a raw
 * read it never saw. Nothing here unrefs a connection (a connection that must not keep the
 * process alive would have to use the public read()).
 *
 * This reaches into the runtime (`Deno[Deno.internal].core` and the connection's internal
 * resource id), so it is confined to this module and checked, not assumed. If either is missing
 * (another Deno version, a wrapped or fake connection) nothing changes: rawSocketRid() returns -1
 * and readSocket()/writeSocket() use the public `read()`/`write()`.
 * tests/unit/net/raw_socket.test.ts fails if the pinned Deno stops offering the ops, so an upgrade
 * cannot quietly lose the fast path.
 */

type CoreOp = (rid: number, buf: Uint8Array) => Promise<number>;

interface Core {
  read: CoreOp;
  write: CoreOp;
}

const core = ((): Core | undefined => {
  try {
    const internal = (Deno as unknown as { internal?: symbol }).internal;
    if (internal === undefined) return undefined;
    const c = (Deno as unknown as Record<symbol, { core?: Partial<Core> } | undefined>)[internal]?.core;
    if (typeof c?.read !== "function" || typeof c?.write !== "function") return undefined;
    return { read: c.read, write: c.write };
  } catch {
    return undefined;
  }
})();

/**
 * The symbol Deno keeps a connection's resource id under, taken from the first real connection
 * seen. Only a find is kept: a test double or wrapper seen first must not turn the fast path off
 * for every connection after it.
 */
let ridSymbol: symbol | undefined;

function findRidSymbol(conn: object): symbol | undefined {
  for (const s of Object.getOwnPropertySymbols(conn)) {
    if (s.description === "Deno.internal.rid") return s;
  }
  return undefined;
}

/**
 * The resource id of a connection Deno made (TCP, TLS, Unix: the id is its own property under
 * Deno's internal symbol), or -1 for anything else (a wrapper, including one that inherits from
 * a connection, or a test double) or when the raw ops are unavailable. A connection whose
 * `read`/`write` were replaced on the object itself still gets its id: the raw ops bypass them.
 */
export function rawSocketRid(conn: unknown): number {
  if (core === undefined || typeof conn !== "object" || conn === null) return -1;
  const sym = ridSymbol ??= findRidSymbol(conn);
  if (sym === undefined || !Object.hasOwn(conn, sym)) return -1;
  const rid = (conn as Record<symbol, unknown>)[sym];
  return typeof rid === "number" ? rid : -1;
}

const unavailable: CoreOp = () => Promise.reject(new Error("no raw socket ops in this runtime"));

/** Reads into `buf` (never empty) from the resource `rid` (from rawSocketRid, not -1): the byte count, 0 at EOF. */
export const rawRead: CoreOp = core?.read ?? unavailable;

/** Writes `buf` to the resource `rid` (from rawSocketRid, not -1): the bytes written (maybe fewer). */
export const rawWrite: CoreOp = core?.write ?? unavailable;

/** Whether this runtime offers the raw ops at all (for the test that guards the fast path). */
export const rawSocketAvailable = core !== undefined;

/**
 * One read into `into` from `conn`: the raw read when `rid` (from rawSocketRid) is not -1, else
 * conn.read(). Bytes read; 0 or null at EOF. An empty `into` is a caller's bug and rejects.
 */
export function readSocket(
  conn: { read(p: Uint8Array): Promise<number | null> },
  rid: number,
  into: Uint8Array,
): Promise<number | null> {
  // The raw read would wait for the socket to be readable and then say 0, which reads as EOF.
  if (into.length === 0) return Promise.reject(new RangeError("socket read into an empty buffer"));
  return rid >= 0 ? rawRead(rid, into) : conn.read(into);
}

/** One write of `bytes` to `conn` (the raw write when `rid` is not -1): the bytes written. */
export function writeSocket(
  conn: { write(p: Uint8Array): Promise<number> },
  rid: number,
  bytes: Uint8Array,
): Promise<number> {
  return rid >= 0 ? rawWrite(rid, bytes) : conn.write(bytes);
}
