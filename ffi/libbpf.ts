/**
 * libbpf through Deno FFI (`Deno.dlopen("libbpf.so.1")`, needs `--allow-ffi`): just the calls
 * the XDP controller makes — open/load an object (with libbpf's messages, including the
 * verifier log, captured into the error), find programs and maps, map I/O, and XDP attachment
 * as a bpf_link (see docs/XDP.md for why a link and not bpf_xdp_attach). Plus three libc calls:
 * if_nametoindex, close and vsnprintf (to format libbpf's printf-style log callback).
 *
 * Nothing here is imported unless `[runtime].xdp_enabled` is true (src/xdp is loaded with a
 * dynamic import), so the default gateway never touches FFI.
 *
 * Errors: libbpf 1.x returns -errno from every call and NULL (+ errno) from constructors; both
 * become a BpfError carrying the errno, so callers can say "no capability" for EPERM.
 */

/** A libbpf or kernel failure with its errno (positive, e.g. 1 = EPERM, 95 = EOPNOTSUPP). */
export class BpfError extends Error {
  constructor(message: string, readonly errno: number, readonly log: string = "") {
    super(message);
    this.name = "BpfError";
  }
}

export const EPERM = 1;
export const ENOENT = 2;
export const EBUSY = 16;
export const EEXIST = 17;
export const EINVAL = 22;
export const EOPNOTSUPP = 95;

/** uapi: enum bpf_attach_type BPF_XDP, and the XDP_FLAGS_* of linux/if_link.h. */
export const BPF_XDP = 37;
export const XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0;
export const XDP_FLAGS_SKB_MODE = 1 << 1;
export const XDP_FLAGS_DRV_MODE = 1 << 2;
/** bpf_map_update_elem flags */
export const BPF_ANY = 0n;

const LIBBPF_SYMBOLS = {
  libbpf_set_print: { parameters: ["function"], result: "pointer" },
  libbpf_num_possible_cpus: { parameters: [], result: "i32" },
  bpf_object__open_file: { parameters: ["buffer", "pointer"], result: "pointer" },
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  bpf_object__find_program_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  bpf_object__find_map_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  bpf_program__fd: { parameters: ["pointer"], result: "i32" },
  bpf_map__fd: { parameters: ["pointer"], result: "i32" },
  bpf_map__set_max_entries: { parameters: ["pointer", "u32"], result: "i32" },
  bpf_map_update_elem: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  bpf_map_lookup_elem: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bpf_map_delete_elem: { parameters: ["i32", "buffer"], result: "i32" },
  bpf_map_get_next_key: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bpf_map_update_batch: { parameters: ["i32", "buffer", "buffer", "buffer", "pointer"], result: "i32" },
  bpf_link_create: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  bpf_link_detach: { parameters: ["i32"], result: "i32" },
  bpf_xdp_attach: { parameters: ["i32", "i32", "u32", "pointer"], result: "i32" },
  bpf_xdp_detach: { parameters: ["i32", "u32", "pointer"], result: "i32" },
  bpf_xdp_query_id: { parameters: ["i32", "i32", "buffer"], result: "i32" },
} as const;

const LIBC_SYMBOLS = {
  if_nametoindex: { parameters: ["buffer"], result: "u32" },
  close: { parameters: ["i32"], result: "i32" },
  vsnprintf: { parameters: ["buffer", "usize", "pointer", "pointer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type LibbpfSymbols = Deno.DynamicLibrary<typeof LIBBPF_SYMBOLS>["symbols"];
type LibcSymbols = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

const enc = new TextEncoder();
const dec = new TextDecoder();

function cstr(s: string): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(enc.encode(s).length + 1);
  enc.encodeInto(s, b);
  return b;
}

/** libbpf_print_level */
const LEVEL_NAMES = ["warn", "info", "debug"];

const opened = new Map<string, Libbpf>();

/** An open handle on libbpf + libc. One per process is enough; it is never unloaded. */
export class Libbpf {
  readonly #bpf: LibbpfSymbols;
  readonly #libc: LibcSymbols;
  /** libbpf log lines captured while a capture is active (see #capture). */
  #captured: string[] | null = null;
  readonly #printCallback: Deno.UnsafeCallback<{ parameters: ["i32", "pointer", "pointer"]; result: "i32" }>;

  private constructor(bpf: LibbpfSymbols, libc: LibcSymbols) {
    this.#bpf = bpf;
    this.#libc = libc;
    this.#printCallback = new Deno.UnsafeCallback(
      { parameters: ["i32", "pointer", "pointer"], result: "i32" } as const,
      (level, fmt, ap) => {
        if (this.#captured === null) return 0;
        const text = this.#vformat(fmt, ap);
        this.#captured.push(level === 0 ? text : `[${LEVEL_NAMES[level] ?? level}] ${text}`);
        return 0;
      },
    );
    // libbpf calls back synchronously from inside our own FFI calls (same thread). Nothing is
    // printed unless a capture is active, so libbpf never writes to the gateway's stderr.
    bpf.libbpf_set_print(this.#printCallback.pointer);
  }

  /**
   * Opens libbpf.so.1 (override with `path`). Throws a BpfError with a clear message when the
   * library is missing or FFI is not permitted.
   */
  static open(path = "libbpf.so.1"): Libbpf {
    // One instance per library for the life of the process: libbpf keeps the print callback
    // in a global, so the callback (owned by the instance) must never be garbage-collected.
    const cached = opened.get(path);
    if (cached) return cached;
    let bpf: Deno.DynamicLibrary<typeof LIBBPF_SYMBOLS>;
    try {
      bpf = Deno.dlopen(path, LIBBPF_SYMBOLS);
    } catch (e) {
      if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
        throw new BpfError(`XDP needs FFI: run with --allow-ffi (${(e as Error).message})`, EPERM);
      }
      throw new BpfError(
        `cannot load ${path}: ${(e as Error).message}. Install libbpf 1.x (Debian: apt-get install libbpf1)`,
        ENOENT,
      );
    }
    const libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
    const lib = new Libbpf(bpf.symbols, libc.symbols);
    opened.set(path, lib);
    return lib;
  }

  /**
   * Formats a printf-style (fmt, va_list) pair. On x86-64 System V a va_list is a pointer to a
   * 24-byte state that vsnprintf consumes, so a copy (what va_copy does) allows a second,
   * larger attempt when the first buffer was too small — the verifier log comes as one "%s".
   */
  #vformat(fmt: Deno.PointerValue, ap: Deno.PointerValue): string {
    if (fmt === null || ap === null) return "";
    const x64 = Deno.build.arch === "x86_64";
    let saved: Uint8Array<ArrayBuffer> | null = null;
    if (x64) {
      saved = new Uint8Array(24);
      new Deno.UnsafePointerView(ap).copyInto(saved);
    }
    let buf = new Uint8Array(x64 ? 4096 : 1 << 20);
    const n = this.#libc.vsnprintf(buf, BigInt(buf.length), fmt, ap);
    if (n < 0) return "";
    if (n >= buf.length && saved) {
      buf = new Uint8Array(n + 1);
      this.#libc.vsnprintf(buf, BigInt(buf.length), fmt, Deno.UnsafePointer.of(saved));
    }
    return dec.decode(buf.subarray(0, Math.min(n, buf.length - 1)));
  }

  /** Runs `fn` with libbpf's log captured; returns its result and the log. */
  #capture<T>(fn: () => T): { value: T; log: string } {
    const prev = this.#captured;
    this.#captured = [];
    try {
      const value = fn();
      return { value, log: this.#captured.join("") };
    } finally {
      this.#captured = prev;
    }
  }

  errno(): number {
    const p = this.#libc.__errno_location();
    return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
  }

  strerror(errno: number): string {
    const p = this.#libc.strerror(errno);
    return p === null ? `errno ${errno}` : Deno.UnsafePointerView.getCString(p);
  }

  #fail(what: string, ret: number, log = ""): never {
    const errno = ret < 0 ? -ret : ret;
    throw new BpfError(
      `${what}: ${this.strerror(errno)} (errno ${errno})${log ? `\n${log}` : ""}`,
      errno,
      log,
    );
  }

  numPossibleCpus(): number {
    const n = this.#bpf.libbpf_num_possible_cpus();
    if (n <= 0) this.#fail("libbpf_num_possible_cpus", n);
    return n;
  }

  /** 0 when the interface does not exist (in this network namespace). */
  ifNameToIndex(name: string): number {
    return this.#libc.if_nametoindex(cstr(name));
  }

  closeFd(fd: number): void {
    if (fd >= 0) this.#libc.close(fd);
  }

  /** Opens (parses) an ELF object; nothing is in the kernel yet. */
  openObject(path: string): BpfObject {
    const { value: obj, log } = this.#capture(() => this.#bpf.bpf_object__open_file(cstr(path), null));
    if (obj === null) this.#fail(`opening BPF object ${path}`, this.errno(), log);
    return new BpfObject(this, this.#bpf, obj, path);
  }

  /** Loads an opened object into the kernel; a verifier rejection carries the verifier log. */
  loadObject(obj: BpfObject): void {
    const { value: rc, log } = this.#capture(() => this.#bpf.bpf_object__load(obj.handle));
    if (rc !== 0) this.#fail(`loading BPF object ${obj.path}`, rc, log.trim());
  }

  mapUpdate(fd: number, key: Uint8Array<ArrayBuffer>, value: Uint8Array<ArrayBuffer>): void {
    const rc = this.#bpf.bpf_map_update_elem(fd, key, value, BPF_ANY);
    if (rc !== 0) this.#fail("bpf_map_update_elem", rc);
  }

  /**
   * Writes `count` consecutive entries in one syscall (keys and values packed back to back).
   * Falls back to one update per entry where the kernel lacks batch ops for the map type.
   */
  mapUpdateBatch(
    fd: number,
    keys: Uint8Array<ArrayBuffer>,
    values: Uint8Array<ArrayBuffer>,
    count: number,
  ): void {
    if (count === 0) return;
    const n = new Uint8Array(4);
    new DataView(n.buffer).setUint32(0, count, true);
    const rc = this.#bpf.bpf_map_update_batch(fd, keys, values, n, null);
    if (rc === 0) return;
    if (rc !== -EINVAL && rc !== -EOPNOTSUPP && rc !== -524 /* ENOTSUPP */) {
      this.#fail("bpf_map_update_batch", rc);
    }
    const ks = keys.length / count;
    const vs = values.length / count;
    for (let i = 0; i < count; i++) {
      this.mapUpdate(fd, keys.slice(i * ks, (i + 1) * ks), values.slice(i * vs, (i + 1) * vs));
    }
  }

  /** False when the key is absent. */
  mapLookup(fd: number, key: Uint8Array<ArrayBuffer>, value: Uint8Array<ArrayBuffer>): boolean {
    const rc = this.#bpf.bpf_map_lookup_elem(fd, key, value);
    if (rc === 0) return true;
    if (rc === -ENOENT) return false;
    this.#fail("bpf_map_lookup_elem", rc);
  }

  /** False when the key was absent. */
  mapDelete(fd: number, key: Uint8Array<ArrayBuffer>): boolean {
    const rc = this.#bpf.bpf_map_delete_elem(fd, key);
    if (rc === 0) return true;
    if (rc === -ENOENT) return false;
    this.#fail("bpf_map_delete_elem", rc);
  }

  /** Next key after `key` (null: the first); false at the end. */
  mapNextKey(fd: number, key: Uint8Array<ArrayBuffer> | null, next: Uint8Array<ArrayBuffer>): boolean {
    const rc = this.#bpf.bpf_map_get_next_key(fd, key, next);
    if (rc === 0) return true;
    if (rc === -ENOENT) return false;
    this.#fail("bpf_map_get_next_key", rc);
  }

  /**
   * Attaches `progFd` to an interface as a bpf_link with XDP_FLAGS_SKB_MODE (generic) or
   * XDP_FLAGS_DRV_MODE (native). The link lives as long as its fd: closing it, or the process
   * dying, detaches the program. Returns the link fd.
   */
  xdpLinkCreate(progFd: number, ifindex: number, flags: number): number {
    // struct bpf_link_create_opts { size_t sz; __u32 flags; ... }: libbpf reads only the first
    // `sz` bytes, so the 16-byte prefix holding `flags` is a valid, complete opts struct.
    const opts = new Uint8Array(16);
    const dv = new DataView(opts.buffer);
    dv.setBigUint64(0, 16n, true);
    dv.setUint32(8, flags, true);
    const fd = this.#bpf.bpf_link_create(progFd, ifindex, BPF_XDP, opts);
    if (fd < 0) this.#fail(`attaching XDP to ifindex ${ifindex}`, fd);
    return fd;
  }

  /** Detaches a link's program now (even if another fd still refers to the link). */
  linkDetach(linkFd: number): void {
    const rc = this.#bpf.bpf_link_detach(linkFd);
    if (rc !== 0 && rc !== -ENOENT && rc !== -EINVAL) this.#fail("bpf_link_detach", rc);
  }

  /** Legacy (netlink) attach, outliving the process; kept for tools, not used by the controller. */
  xdpAttach(ifindex: number, progFd: number, flags: number): void {
    const rc = this.#bpf.bpf_xdp_attach(ifindex, progFd, flags, null);
    if (rc !== 0) this.#fail(`bpf_xdp_attach ifindex ${ifindex}`, rc);
  }

  xdpDetach(ifindex: number, flags: number): void {
    const rc = this.#bpf.bpf_xdp_detach(ifindex, flags, null);
    if (rc !== 0) this.#fail(`bpf_xdp_detach ifindex ${ifindex}`, rc);
  }

  /** Id of the XDP program attached to the interface in the given mode flags (0 = none). */
  xdpQueryId(ifindex: number, flags = 0): number {
    const id = new Uint8Array(4);
    const rc = this.#bpf.bpf_xdp_query_id(ifindex, flags, id);
    if (rc !== 0) this.#fail(`bpf_xdp_query_id ifindex ${ifindex}`, rc);
    return new DataView(id.buffer).getUint32(0, true);
  }
}

/** An opened (then loaded) bpf_object. close() frees its programs and maps. */
export class BpfObject {
  #handle: Deno.PointerObject | null;

  constructor(
    readonly lib: Libbpf,
    readonly sym: LibbpfSymbols,
    handle: Deno.PointerObject,
    readonly path: string,
  ) {
    this.#handle = handle;
  }

  get handle(): Deno.PointerObject {
    if (this.#handle === null) throw new BpfError(`BPF object ${this.path} is closed`, EINVAL);
    return this.#handle;
  }

  #map(name: string): Deno.PointerObject {
    const m = this.sym.bpf_object__find_map_by_name(this.handle, cstr(name));
    if (m === null) throw new BpfError(`map ${name} not found in ${this.path}`, ENOENT);
    return m;
  }

  /** Before load only. */
  setMaxEntries(mapName: string, n: number): void {
    const rc = this.sym.bpf_map__set_max_entries(this.#map(mapName), n);
    if (rc !== 0) throw new BpfError(`bpf_map__set_max_entries(${mapName}, ${n}) failed (${rc})`, -rc);
  }

  /** After load only. */
  mapFd(name: string): number {
    const fd = this.sym.bpf_map__fd(this.#map(name));
    if (fd < 0) throw new BpfError(`map ${name} has no fd (object not loaded?)`, -fd);
    return fd;
  }

  /** After load only. */
  programFd(name: string): number {
    const p = this.sym.bpf_object__find_program_by_name(this.handle, cstr(name));
    if (p === null) throw new BpfError(`program ${name} not found in ${this.path}`, ENOENT);
    const fd = this.sym.bpf_program__fd(p);
    if (fd < 0) throw new BpfError(`program ${name} has no fd (object not loaded?)`, -fd);
    return fd;
  }

  close(): void {
    if (this.#handle === null) return;
    this.sym.bpf_object__close(this.#handle);
    this.#handle = null;
  }
}
