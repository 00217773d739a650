/**
 * A socket read without the async function Deno wraps around it.
 *
 * Why: `Deno.Conn.read()` is an async method around the runtime's read op. It awaits the op's
 * promise, keeps it in a Set meanwhile (for ref/unref), and maps 0 to null. Each call costs a
 * second promise, a generator, a resumption and a Set insert and delete. The HTTP/1.1 path makes
 * two reads per request, so that is two promise hops per request that do nothing for us.
 * Calling the op directly (`core.read(rid, buf)`, the call inside `read()`) skips them. It
 * resolves to the byte count, 0 at EOF, and rejects as `read()` does.
 *
 * This reaches into the runtime (`Deno[Deno.internal].core` and the connection's internal
 * resource id), so it is confined to this module and checked, not assumed. If either is
 * missing (another Deno version, a wrapped or fake connection) nothing changes: rawReadOf()
 * returns undefined and callers use the public `read()`. tests/unit/net/socket_read.test.ts
 * fails if the pinned Deno stops offering it, so an upgrade cannot quietly lose the fast path.
 * Connections we never read through ConnReader (pipes and streams of other kinds) are not touched.
 */

type CoreRead = (rid: number, buf: Uint8Array) => Promise<number>;

const core = (() => {
  try {
    const d = Deno as unknown as Record<symbol, { core?: { read?: unknown } } | undefined>;
    const internal = (Deno as unknown as { internal?: symbol }).internal;
    const read = internal === undefined ? undefined : d[internal]?.core?.read;
    return typeof read === "function" ? read as CoreRead : undefined;
  } catch {
    return undefined;
  }
})();

/** The symbol Deno keeps a connection's resource id under, found once on the first connection. */
let ridSymbol: symbol | null | undefined;

function findRidSymbol(conn: object): symbol | null {
  for (const s of Object.getOwnPropertySymbols(conn)) {
    if (s.description === "Deno.internal.rid") return s;
  }
  return null;
}

/**
 * The resource id of a connection Deno made (TCP, TLS, Unix: the id is its own property under
 * Deno's internal symbol), or -1 for anything else (a wrapper, a test double) or when the raw
 * read is unavailable.
 */
export function rawReadRid(conn: unknown): number {
  if (core === undefined || typeof conn !== "object" || conn === null) return -1;
  if (ridSymbol === undefined) ridSymbol = findRidSymbol(conn);
  if (ridSymbol === null) return -1;
  const rid = (conn as unknown as Record<symbol, unknown>)[ridSymbol];
  return typeof rid === "number" ? rid : -1;
}

/**
 * Reads into `buf` (never empty) from the resource `rid` (from rawReadRid, not -1): the byte
 * count, 0 at EOF.
 */
export const rawRead: CoreRead = core ??
  (() => Promise.reject(new Error("no raw socket read in this runtime")));

/**
 * One read into `into` (never empty) from `conn`: the raw read when `rid` (from rawReadRid) is
 * not -1, else conn.read(). Bytes read; 0 or null at EOF.
 */
export function readSocket(
  conn: { read(p: Uint8Array): Promise<number | null> },
  rid: number,
  into: Uint8Array,
): Promise<number | null> {
  return rid >= 0 ? rawRead(rid, into) : conn.read(into);
}

/** Whether this runtime offers the raw read at all (for the test that guards the fast path). */
export const rawReadAvailable = core !== undefined;
