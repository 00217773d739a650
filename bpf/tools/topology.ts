/**
 * Network-namespace topology for the XDP tests and the UDP benchmark (DESIGN.md §7):
 *
 *   <p>-c (client 10.201.1.2) ── c0 ═ l0 ── <p>-lb (router, ip_forward=1) ── l1 ═ b0 ── <p>-b1 (10.201.2.2)
 *                                                                         └─ l2 ═ b0 ── <p>-b2 (10.201.3.2)
 *
 * The VIP (10.201.100.1) is assigned nowhere: the client's default route points at the LB,
 * and only the XDP program knows the VIP. Endpoint veths get TX checksum offload off (the
 * program rewrites real checksums, not CHECKSUM_PARTIAL seeds); with `xdpPass` the endpoints
 * run bpf/xdp_pass.o so native redirects into their veth peers are accepted.
 *
 * Namespaces are named `<base><pid>-…` (pid of the creating process), so two runs at once do
 * not collide. create() first deletes what crashed earlier runs left under the same base —
 * namespaces whose creating process is gone — killing only processes inside those namespaces;
 * destroy() deletes this run's namespaces. Needs root.
 */

export const ADDR = {
  client: "10.201.1.2",
  lbClientSide: "10.201.1.1",
  b1: "10.201.2.2",
  b2: "10.201.3.2",
  vip: "10.201.100.1",
} as const;

const XDP_PASS_OBJ = new URL("../xdp_pass.o", import.meta.url).pathname;
const dec = new TextDecoder();
const enc = new TextEncoder();

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (bounded by timeoutMs), returning its output. */
export async function sh(cmd: string, args: string[], timeoutMs = 30_000): Promise<CmdResult> {
  const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null" }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, timeoutMs);
  try {
    const out = await child.output();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}

/** Like sh() but throws with the command's stderr on a non-zero exit. */
export async function must(cmd: string, args: string[]): Promise<string> {
  const r = await sh(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

/**
 * A long-running process speaking JSON lines on stdin/stdout (src/xdp/cli.ts,
 * bpf/tools/xdp_peer.mjs). next() waits for the next stdout line, bounded in time.
 */
export class LineProc {
  readonly child: Deno.ChildProcess;
  readonly #lines: string[] = [];
  readonly #waiters: Array<(line: string | null) => void> = [];
  #ended = false;
  #stderr = "";
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly done: Promise<Deno.CommandStatus>;

  constructor(readonly label: string, cmd: string, args: string[]) {
    this.child = new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "piped" }).spawn();
    this.#stdin = this.child.stdin.getWriter();
    const pump = async (stream: ReadableStream<Uint8Array>, onText: (t: string) => void) => {
      const r = stream.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await r.read();
        if (done) break;
        onText(value);
      }
    };
    let buf = "";
    const out = pump(this.child.stdout, (t) => {
      buf += t;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const w = this.#waiters.shift();
        if (w) w(line);
        else this.#lines.push(line);
      }
    }).finally(() => {
      this.#ended = true;
      for (const w of this.#waiters.splice(0)) w(null);
    });
    const err = pump(this.child.stderr, (t) => {
      this.#stderr = (this.#stderr + t).slice(-20_000);
    });
    this.done = Promise.all([out, err]).then(() => this.child.status);
  }

  get stderr(): string {
    return this.#stderr;
  }

  // deno-lint-ignore no-explicit-any
  async next(timeoutMs = 10_000): Promise<any> {
    let line: string | null;
    if (this.#lines.length > 0) line = this.#lines.shift()!;
    else if (this.#ended) line = null;
    else {
      let timer: ReturnType<typeof setTimeout> | undefined;
      line = await new Promise<string | null>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(() => {
          const i = this.#waiters.indexOf(resolve);
          if (i >= 0) this.#waiters.splice(i, 1);
          resolve(null);
        }, timeoutMs);
      });
      clearTimeout(timer);
    }
    if (line === null) {
      throw new Error(`${this.label}: no output (exited or timed out); stderr: ${this.#stderr.slice(-2000)}`);
    }
    return JSON.parse(line);
  }

  async send(obj: unknown): Promise<void> {
    await this.#stdin.write(enc.encode(JSON.stringify(obj) + "\n"));
  }

  // deno-lint-ignore no-explicit-any
  async request(obj: unknown, timeoutMs = 10_000): Promise<any> {
    await this.send(obj);
    return await this.next(timeoutMs);
  }

  /** Closes stdin (a polite stop for both peers), then SIGKILLs after graceMs. */
  async stop(graceMs = 3000): Promise<Deno.CommandStatus> {
    try {
      await this.#stdin.close();
    } catch { /* already closed */ }
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    try {
      return await this.done;
    } finally {
      clearTimeout(timer);
    }
  }

  kill(sig: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(sig);
    } catch { /* exited */ }
  }
}

export class Topology {
  readonly client: string;
  readonly lb: string;
  readonly b1: string;
  readonly b2: string;

  private constructor(readonly prefix: string) {
    this.client = `${prefix}-c`;
    this.lb = `${prefix}-lb`;
    this.b1 = `${prefix}-b1`;
    this.b2 = `${prefix}-b2`;
  }

  get namespaces(): string[] {
    return [this.client, this.lb, this.b1, this.b2];
  }

  /** Builds the four namespaces `<base><pid>-…` (after removing stale ones under `base`). */
  static async create(base: string, opts: { xdpPass?: boolean } = {}): Promise<Topology> {
    await removeStale(base);
    const t = new Topology(`${base}${Deno.pid}`);
    await removeNamespaces(t.prefix);
    try {
      for (const ns of t.namespaces) {
        await must("ip", ["netns", "add", ns]);
        await must("ip", ["-n", ns, "link", "set", "lo", "up"]);
      }
      const veth = async (a: string, aNs: string, b: string, bNs: string) =>
        await must("ip", ["link", "add", a, "netns", aNs, "type", "veth", "peer", "name", b, "netns", bNs]);
      await veth("l0", t.lb, "c0", t.client);
      await veth("l1", t.lb, "b0", t.b1);
      await veth("l2", t.lb, "b0", t.b2);
      const addr = async (ns: string, dev: string, cidr: string) => {
        await must("ip", ["-n", ns, "addr", "add", cidr, "dev", dev]);
        await must("ip", ["-n", ns, "link", "set", dev, "up"]);
      };
      await addr(t.lb, "l0", "10.201.1.1/24");
      await addr(t.lb, "l1", "10.201.2.1/24");
      await addr(t.lb, "l2", "10.201.3.1/24");
      await addr(t.client, "c0", `${ADDR.client}/24`);
      await addr(t.b1, "b0", `${ADDR.b1}/24`);
      await addr(t.b2, "b0", `${ADDR.b2}/24`);
      await must("ip", ["-n", t.client, "route", "add", "default", "via", "10.201.1.1"]);
      await must("ip", ["-n", t.b1, "route", "add", "default", "via", "10.201.2.1"]);
      await must("ip", ["-n", t.b2, "route", "add", "default", "via", "10.201.3.1"]);
      await must("ip", [
        "netns",
        "exec",
        t.lb,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
        "net.ipv4.conf.all.rp_filter=0",
        "net.ipv4.conf.default.rp_filter=0",
      ]);
      for (const [ns, dev] of [[t.client, "c0"], [t.b1, "b0"], [t.b2, "b0"]]) {
        await must("ip", ["netns", "exec", ns, "ethtool", "-K", dev, "tx", "off"]);
      }
      if (opts.xdpPass) await t.setXdpPass(true);
      return t;
    } catch (e) {
      await t.destroy();
      throw e;
    }
  }

  /** Attaches (or removes) bpf/xdp_pass.o, native, on the endpoints' veths. */
  async setXdpPass(on: boolean): Promise<void> {
    for (const [ns, dev] of [[this.client, "c0"], [this.b1, "b0"], [this.b2, "b0"]]) {
      const args = on ? ["xdpdrv", "obj", XDP_PASS_OBJ, "sec", "xdp"] : ["xdpdrv", "off"];
      await must("ip", ["-n", ns, "link", "set", "dev", dev, ...args]);
    }
  }

  /**
   * GRO on the endpoints' veths: the other way (besides an XDP program on the peer) to make a
   * veth accept native XDP redirects, since GRO gives it a NAPI instance.
   */
  async setGro(on: boolean): Promise<void> {
    for (const [ns, dev] of [[this.client, "c0"], [this.b1, "b0"], [this.b2, "b0"]]) {
      await must("ip", ["netns", "exec", ns, "ethtool", "-K", dev, "gro", on ? "on" : "off"]);
    }
  }

  /** `ip netns exec <ns> cmd args…` to completion. */
  exec(ns: string, cmd: string, args: string[], timeoutMs = 30_000): Promise<CmdResult> {
    return sh("ip", ["netns", "exec", ns, cmd, ...args], timeoutMs);
  }

  /** A long-running JSON-line process inside a namespace. */
  spawn(label: string, ns: string, cmd: string, args: string[]): LineProc {
    return new LineProc(label, "ip", ["netns", "exec", ns, cmd, ...args]);
  }

  /** /proc/net/snmp of a namespace as { "Tcp.InCsumErrors": n, … }. */
  async snmp(ns: string): Promise<Record<string, number>> {
    const text = (await this.exec(ns, "cat", ["/proc/net/snmp"])).stdout;
    const lines = text.trim().split("\n");
    const out: Record<string, number> = {};
    for (let i = 0; i + 1 < lines.length; i += 2) {
      const names = lines[i].split(/\s+/);
      const values = lines[i + 1].split(/\s+/);
      const proto = names[0].replace(":", "");
      for (let j = 1; j < names.length; j++) out[`${proto}.${names[j]}`] = Number(values[j]);
    }
    return out;
  }

  /** `ip -d link show` of the LB namespace (to see whether any xdp program is attached). */
  async lbLinks(): Promise<string> {
    return await must("ip", ["-n", this.lb, "-d", "link", "show"]);
  }

  async destroy(): Promise<void> {
    await removeNamespaces(this.prefix);
  }
}

function alive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

async function netnsNames(): Promise<string[]> {
  const list = await sh("ip", ["netns", "list"]);
  return list.stdout.split("\n").map((l) => l.split(" ")[0]).filter((n) => n !== "");
}

/** Removes `<base><pid>-*` namespaces whose creating process no longer exists. */
export async function removeStale(base: string): Promise<void> {
  if (!/^[a-z][a-z-]*$/.test(base)) {
    throw new Error(`namespace base '${base}' must be lower-case letters and '-'`);
  }
  const stale = new Set<string>();
  for (const ns of await netnsNames()) {
    const m = new RegExp(`^${base}(\\d+)-`).exec(ns);
    if (m && !alive(Number(m[1]))) stale.add(`${base}${m[1]}`);
  }
  for (const prefix of stale) await removeNamespaces(prefix);
}

/** Deletes every namespace named `<prefix>-*`, after killing the processes inside it. */
export async function removeNamespaces(prefix: string): Promise<void> {
  const names = (await netnsNames()).filter((n) => n.startsWith(`${prefix}-`));
  for (const ns of names) {
    const pids = (await sh("ip", ["netns", "pids", ns])).stdout.split(/\s+/).filter((p) => /^\d+$/.test(p));
    for (const pid of pids) {
      try {
        Deno.kill(Number(pid), "SIGKILL");
      } catch { /* gone */ }
    }
    await sh("ip", ["netns", "del", ns]);
  }
}
