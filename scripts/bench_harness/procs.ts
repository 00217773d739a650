/**
 * Processes the benchmark starts, and what it reads about them from /proc: CPU ticks and RSS of
 * a whole process tree (nginx is a master plus a worker; the others are one process with many
 * threads, which /proc/<pid>/stat already sums). Every process is recorded in the pid file the
 * scripts/bench wrapper reads on exit, so nothing outlives the run even if this program dies.
 */

export const CLK_TCK = 100; // Linux USER_HZ on every kernel we run on (getconf CLK_TCK)

/** Someone started by the harness: the root pid, and how to stop it and its descendants. */
export interface Started {
  name: string;
  pid: number;
  child: Deno.ChildProcess;
  /** Resolves with the exit code when the root process exits. */
  exited: Promise<number>;
  /** Everything it wrote (last 64 KiB), for error messages. */
  output(): string;
  /** Root plus descendants, as last seen by tree(). */
  pids: Set<number>;
  /** How the root exited ("exit code 1", "signal SIGTERM"), once it has. */
  status?: string;
}

const started: Started[] = [];
/** Short-lived commands (wrk, h2load, curl) in flight, killed by stopAll() on an interrupt. */
const running = new Set<Deno.ChildProcess>();
const PIDFILE = Deno.env.get("BENCH_PIDFILE");
let aborting = false;

/** After this, spawn() and runCmd() refuse to start anything (an interrupt is tearing down). */
export function abort(): void {
  aborting = true;
}

export function isAborting(): boolean {
  return aborting;
}

function refuseIfAborting(what: string): void {
  if (aborting) throw new Error(`interrupted: not starting ${what}`);
}

function startTime(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Appends "pid starttime name" so the wrapper can kill exactly this process if we die. */
function record(pid: number, name: string): void {
  if (!PIDFILE) return;
  const st = startTime(pid);
  if (st === undefined) return;
  try {
    Deno.writeTextFileSync(PIDFILE, `${pid} ${st} ${name}\n`, { append: true });
  } catch { /* the wrapper's safety net is best effort */ }
}

export interface SpawnOptions {
  cpus?: string;
  env?: Record<string, string>;
  cwd?: string;
  stdin?: "null" | "piped";
}

/** Spawns cmd (under `taskset -c cpus` when given; taskset execs, so the pid is cmd's). */
export function spawn(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Started {
  refuseIfAborting(name);
  const argv = opts.cpus ? ["taskset", "-c", opts.cpus, cmd, ...args] : [cmd, ...args];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: opts.env,
    cwd: opts.cwd,
    stdin: opts.stdin ?? "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    try {
      for await (const chunk of s) {
        text += dec.decode(chunk, { stream: true });
        if (text.length > 128 * 1024) text = text.slice(-64 * 1024);
      }
    } catch { /* process gone */ }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = child.status.then(async (s) => {
    p.status = s.signal ? `signal ${s.signal}` : `exit code ${s.code}`;
    await pumps;
    return s.code;
  });
  const p: Started = { name, pid: child.pid, child, exited, output: () => text, pids: new Set([child.pid]) };
  started.push(p);
  record(child.pid, name);
  return p;
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** undefined while p's root process runs; otherwise how it ended. */
export function exitInfo(p: Started): string | undefined {
  if (alive(p.pid)) return undefined;
  return p.status ?? "exited";
}

/** Every pid whose ancestry reaches root (root included), from one scan of /proc. */
export function descendants(root: number): Set<number> {
  const parent = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    const pid = Number(e.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch { /* exited while scanning */ }
  }
  const out = new Set<number>([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!out.has(pid) && out.has(ppid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return out;
}

/** Refreshes p.pids (call once the process is ready: nginx forks its worker at start). */
export function refreshTree(p: Started): void {
  for (const pid of descendants(p.pid)) {
    if (!p.pids.has(pid)) {
      p.pids.add(pid);
      record(pid, `${p.name}-child`);
    }
  }
}

/** utime + stime of the tree, in seconds. */
export function cpuSeconds(p: Started): number {
  let ticks = 0;
  for (const pid of p.pids) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(f[11]) + Number(f[12]); // fields 14 and 15 of proc(5)
    } catch { /* exited */ }
  }
  return ticks / CLK_TCK;
}

function statusKiB(pid: number, key: string): number {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = s.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Resident set size of the tree (sum of VmRSS), in bytes. */
export function rssBytes(p: Started): number {
  let kib = 0;
  for (const pid of p.pids) kib += statusKiB(pid, "VmRSS");
  return kib * 1024;
}

/** Proportional set size of the tree (shared pages split between sharers), in bytes. */
export function pssBytes(p: Started): number {
  let kib = 0;
  for (const pid of p.pids) {
    try {
      const s = Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`);
      const m = s.match(/^Pss:\s+(\d+) kB/m);
      if (m) kib += Number(m[1]);
    } catch { /* exited */ }
  }
  return kib * 1024;
}

/** Samples rssBytes every intervalMs until stop(); returns the peak seen. */
export function rssSampler(p: Started, intervalMs = 250): { stop(): number } {
  let peak = rssBytes(p);
  const t = setInterval(() => {
    peak = Math.max(peak, rssBytes(p));
  }, intervalMs);
  return {
    stop() {
      clearInterval(t);
      return Math.max(peak, rssBytes(p));
    },
  };
}

/** SIGTERM the tree, wait up to graceMs, then SIGKILL whatever is left. */
export async function stop(p: Started, graceMs = 5000): Promise<void> {
  refreshTree(p);
  const kill = (pid: number, sig: Deno.Signal) => {
    try {
      Deno.kill(pid, sig);
    } catch { /* gone */ }
  };
  kill(p.pid, "SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<void>((r) => timer = setTimeout(r, graceMs));
  await Promise.race([p.exited, timedOut]);
  clearTimeout(timer);
  for (const pid of p.pids) if (alive(pid)) kill(pid, "SIGKILL");
  await p.exited;
  // A worker whose master died first is reparented; give it a moment, then make sure.
  for (let i = 0; i < 20 && [...p.pids].some(alive); i++) await sleep(50);
  for (const pid of p.pids) if (alive(pid)) kill(pid, "SIGKILL");
}

/** Stops everything still running, newest first. Safe to call twice. */
export async function stopAll(): Promise<void> {
  for (const c of running) {
    try {
      c.kill("SIGKILL");
    } catch { /* exited */ }
  }
  const list = started.splice(0).reverse();
  await Promise.all(list.map((p) => stop(p).catch(() => {})));
}

export function log(msg: string): void {
  console.error(`[bench] ${msg}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Free loopback ports (bound then released; a race with other programs is retried by callers). */
export function freePorts(n: number): number[] {
  const ls = Array.from({ length: n }, () => Deno.listen({ hostname: "127.0.0.1", port: 0 }));
  const ports = ls.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of ls) l.close();
  return ports;
}

/** Waits until every port accepts a TCP connection, or throws after timeoutMs. */
export async function waitForPorts(p: Started, ports: number[], timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exitCode: number | undefined;
  p.exited.then((c) => exitCode = c);
  for (const port of ports) {
    for (;;) {
      if (exitCode !== undefined) {
        throw new Error(`${p.name} exited (${exitCode}) before listening:\n${p.output().slice(-2000)}`);
      }
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        c.close();
        break;
      } catch {
        if (Date.now() > deadline) {
          throw new Error(
            `${p.name}: port ${port} not listening after ${timeoutMs} ms:\n${p.output().slice(-2000)}`,
          );
        }
        await sleep(50);
      }
    }
  }
}

/** Runs a command to completion, bounded in time; returns code and combined output. */
export async function runCmd(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; cpus?: string; env?: Record<string, string>; cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  refuseIfAborting(cmd);
  const argv = opts.cpus ? ["taskset", "-c", opts.cpus, cmd, ...args] : [cmd, ...args];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: opts.env,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  record(child.pid, cmd);
  running.add(child);
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, opts.timeoutMs ?? 120_000);
  const out = await child.output().finally(() => running.delete(child));
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
