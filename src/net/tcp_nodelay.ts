/**
 * TCP_NODELAY for the sockets an `https` listener accepts, set through libc (Deno FFI).
 *
 * Why: `Deno.listenTls` never sets TCP_NODELAY on the sockets it accepts and `Deno.TlsConn` has
 * no `setNoDelay()`, so with Nagle on, the last partial segment of a response waits for the
 * client's delayed ACK, up to 40 ms (docs/ARCHITECTURE.md has the measurements). Linux copies a
 * listening socket's TCP_NODELAY to every socket accepted from it, so setting it once on the
 * listener fixes every connection, with no per-connection cost.
 *
 * Deno gives no file descriptor for a listener, so the descriptor is found: the lowest free fd
 * just before the bind (`fcntl(0, F_DUPFD)`) is where the new socket lands, and a short window
 * around it is checked with getsockname + SO_ACCEPTCONN for listening TCP sockets on the bound
 * port. Any such socket belongs to this process (the kernel refuses a second owner of a port
 * unless it shares reusePort with us), so setting the option on an older one of our own
 * listeners on that port is harmless.
 *
 * Needs `--allow-ffi` (scripts/flags.ts adds it when the config has an `https` listener; the
 * default compiled binary carries it). Without it, or off Linux, nothing is set and callers get
 * "unavailable" to report; the listener works as before.
 */

const LIBC_SYMBOLS = {
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

const F_DUPFD = 0;
const SOL_SOCKET = 1;
const SO_ACCEPTCONN = 30;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const AF_INET = 2;
const AF_INET6 = 10;
/** Descriptors checked below and above the predicted one (other threads may open or close fds meanwhile). */
const WINDOW_BELOW = 16;
const WINDOW_ABOVE = 64;

export type NoDelayResult =
  /** TCP_NODELAY is on for the listener, so for every socket it accepts. */
  | "set"
  /** No FFI permission, or not Linux/glibc: nothing was changed. */
  | "unavailable"
  /** FFI worked but no listening socket on the port was found near the predicted descriptor. */
  | "not_found";

let libc: Libc | null | undefined; // undefined: not tried yet; null: cannot be opened here

function openLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  if (Deno.build.os !== "linux") return libc;
  try {
    libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS).symbols;
  } catch { /* no --allow-ffi, or no glibc: reported by the caller as "unavailable" */ }
  return libc;
}

const int = new Int32Array(1);
const intBytes = new Uint8Array(int.buffer);
const len = new Uint32Array(1);
const lenBytes = new Uint8Array(len.buffer);
const sockaddr = new Uint8Array(128);
const ONE = new Uint8Array(new Int32Array([1]).buffer);

/** The local TCP port of `fd` if it is an IPv4/IPv6 socket, else -1. */
function localPort(c: Libc, fd: number): number {
  len[0] = sockaddr.length;
  if (c.getsockname(fd, sockaddr, lenBytes) !== 0 || len[0] < 4) return -1;
  const family = sockaddr[0] | (sockaddr[1] << 8); // sa_family_t, host order (little-endian here)
  if (family !== AF_INET && family !== AF_INET6) return -1;
  return (sockaddr[2] << 8) | sockaddr[3]; // sin_port / sin6_port, network order
}

function isListening(c: Libc, fd: number): boolean {
  len[0] = 4;
  return c.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, intBytes, lenBytes) === 0 && int[0] === 1;
}

/** The lowest descriptor number not in use, or -1 (then the search starts at 0). */
function lowestFreeFd(c: Libc): number {
  const fd = c.fcntl(0, F_DUPFD, 0);
  if (fd < 0) return -1;
  c.close(fd);
  return fd;
}

/**
 * Runs `bind` (which must create exactly one listening TCP socket, e.g. `Deno.listenTls`) and
 * turns TCP_NODELAY on for it. Errors from `bind` propagate unchanged; this part never throws.
 */
export function bindWithNoDelay<L extends Deno.Listener>(
  bind: () => L,
): { listener: L; noDelay: NoDelayResult } {
  const c = openLibc();
  const predicted = c ? lowestFreeFd(c) : -1;
  const listener = bind();
  if (!c) return { listener, noDelay: "unavailable" };
  const port = (listener.addr as Deno.NetAddr).port;
  let found = false;
  const from = Math.max(0, predicted - WINDOW_BELOW);
  for (let fd = from; fd < Math.max(predicted, 0) + WINDOW_ABOVE; fd++) {
    if (localPort(c, fd) !== port || !isListening(c, fd)) continue;
    if (c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, ONE, 4) === 0) found = true;
  }
  return { listener, noDelay: found ? "set" : "not_found" };
}
