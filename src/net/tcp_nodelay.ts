/**
 * TCP_NODELAY for the sockets an `https` listener accepts, set through libc (Deno FFI).
 *
 * Why: `Deno.listenTls` never sets TCP_NODELAY on the sockets it accepts and `Deno.TlsConn` has
 * no `setNoDelay()`, so with Nagle on, the last partial segment of a response waits for the
 * client's delayed ACK, up to 40 ms (docs/ARCHITECTURE.md has the measurements). Linux copies a
 * listening socket's TCP_NODELAY to every socket accepted from it, so setting it once on the
 * listener fixes every connection, with no per-connection cost.
 *
 * Deno gives no file descriptor for a listener, so after the bind every open descriptor of the
 * process is listed (getdents64 on /proc/self/fd, through libc, so Deno's file permissions do not
 * apply) and each listening TCP socket on the bound port (getsockname + SO_ACCEPTCONN) gets the
 * option. Any such socket is this process's own: the kernel lets a second socket bind the port
 * only with reusePort, which means ours (the other data-plane workers, or the listener a
 * certificate rotation is replacing), and those already have the option, so setting it again is
 * harmless. Listing costs one getsockname per open descriptor (a few ms with 10,000 open
 * connections), once per bind.
 *
 * Needs `--allow-ffi` (scripts/flags.ts adds it when the config has an `https` listener; the
 * default compiled binary carries it). Without it, or off Linux, nothing is set and callers get
 * "unavailable" to report; the listener works as before.
 */

const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

const O_RDONLY_DIRECTORY_CLOEXEC = 0o200000 | 0o2000000;
const SOL_SOCKET = 1;
const SO_ACCEPTCONN = 30;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const AF_INET = 2;
const AF_INET6 = 10;
/** Without /proc (no procfs mounted): descriptors below this are checked instead. */
const FALLBACK_FDS = 4096;

export type NoDelayResult =
  /** TCP_NODELAY is on for the listener, so for every socket it accepts. */
  | "set"
  /** No FFI permission, or not Linux/glibc: nothing was changed. */
  | "unavailable"
  /** FFI worked but no listening socket on the port was found among the open descriptors. */
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

const PROC_FD = new TextEncoder().encode("/proc/self/fd\0");
const dirents = new Uint8Array(32 * 1024);

/**
 * Calls `each` with every open descriptor of the process (linux_dirent64 records: d_reclen at
 * offset 16, the name from offset 19, NUL-terminated); false if /proc/self/fd cannot be listed.
 */
function forEachOpenFd(c: Libc, each: (fd: number) => void): boolean {
  const dir = c.open(PROC_FD, O_RDONLY_DIRECTORY_CLOEXEC);
  if (dir < 0) return false;
  const view = new DataView(dirents.buffer);
  try {
    for (;;) {
      const n = Number(c.getdents64(dir, dirents, BigInt(dirents.length)));
      if (n <= 0) return n === 0;
      for (let off = 0; off < n;) {
        const reclen = view.getUint16(off + 16, true);
        let fd = 0, digits = 0;
        for (let i = off + 19; i < off + reclen && dirents[i] !== 0; i++, digits++) {
          const d = dirents[i] - 0x30;
          if (d < 0 || d > 9) {
            digits = -1; // "." and ".."
            break;
          }
          fd = fd * 10 + d;
        }
        if (digits > 0 && fd !== dir) each(fd);
        off += reclen;
      }
    }
  } finally {
    c.close(dir);
  }
}

/**
 * Runs `bind` (which must create exactly one listening TCP socket, e.g. `Deno.listenTls`) and
 * turns TCP_NODELAY on for it. Errors from `bind` propagate unchanged; this part never throws.
 */
export function bindWithNoDelay<L extends Deno.Listener>(
  bind: () => L,
): { listener: L; noDelay: NoDelayResult } {
  const listener = bind();
  const c = openLibc();
  if (!c) return { listener, noDelay: "unavailable" };
  const port = (listener.addr as Deno.NetAddr).port;
  let found = false;
  const check = (fd: number) => {
    if (localPort(c, fd) !== port || !isListening(c, fd)) return;
    if (c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, ONE, 4) === 0) found = true;
  };
  if (!forEachOpenFd(c, check)) { for (let fd = 0; fd < FALLBACK_FDS; fd++) check(fd); }
  return { listener, noDelay: found ? "set" : "not_found" };
}
