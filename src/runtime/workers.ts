/**
 * N data-plane workers behind one handle for the control isolate. Each worker is a Deno
 * Worker (own isolate, own thread, same process) running src/runtime/worker.ts; all bind the
 * TCP/TLS listeners with reusePort, so the kernel spreads connections across them. UDP
 * listeners run in worker 0 only (Deno has no reusePort for datagram sockets).
 *
 * Worker 0 starts first: listeners configured with port 0 get a concrete port there, and the
 * others bind those same ports. A snapshot reaches every worker before apply() resolves; a
 * worker that dies is logged, its share of the shared counters is released, and it is started
 * again on the current snapshot (only its in-flight requests are lost).
 */

import type { ConfigSnapshot } from "../config/types.ts";
import type { HealthManager } from "../health/manager.ts";
import type { Logger } from "../observability/log.ts";
import { type CollectedFamily, mergeCollected, Registry } from "../observability/metrics.ts";
import type { RotationFailure } from "./dataplane.ts";
import type { FromWorker, ToWorker } from "./messages.ts";
import { SharedCounters } from "./shared_counters.ts";

export class WorkerStartError extends Error {
  constructor(message: string, readonly bind: boolean) {
    super(message);
    this.name = "WorkerStartError";
  }
}

interface Slot {
  id: number;
  worker: Worker;
  /** Resolvers waiting for this worker's next answer of a kind. */
  waiting: Map<string, Array<(m: FromWorker) => void>>;
  alive: boolean;
  lastDeath: number;
  recentDeaths: number;
}

const WORKER_URL = new URL("./worker.ts", import.meta.url);

export class WorkerGroup {
  readonly #slots: Slot[] = [];
  readonly counters: SharedCounters;
  #snapshot!: ConfigSnapshot;
  #ports: Record<string, number> = {};
  #health: HealthManager | undefined;
  #seq = 0;
  #stopping = false;
  /** Set once every worker started: only then is a death answered with a restart. */
  #started = false;
  readonly registry = new Registry();
  readonly #restarts;

  constructor(readonly size: number, private readonly log: Logger) {
    this.counters = new SharedCounters(undefined, 0, size);
    this.#restarts = this.registry.counter(
      "expressgateway_worker_restarts_total",
      "Data-plane workers restarted after they died.",
    );
    this.registry.gauge("expressgateway_workers", "Data-plane workers running.").set(size);
  }

  attachHealth(h: HealthManager): void {
    this.#health = h;
    h.onChange = (key, up) => this.#broadcast({ t: "health", key, up });
  }

  ports(): Record<string, number> {
    return { ...this.#ports };
  }

  get connectionCount(): number {
    return -1; // not tracked across isolates; the drain reports what was cut
  }

  async start(snapshot: ConfigSnapshot): Promise<void> {
    this.#snapshot = snapshot;
    try {
      const first = await this.#spawn(0);
      this.#ports = first;
      const rest = [];
      for (let id = 1; id < this.size; id++) rest.push(this.#spawn(id));
      await Promise.all(rest);
      this.#started = true;
    } catch (e) {
      this.terminate();
      throw e;
    }
  }

  #spawn(id: number, previous?: Slot): Promise<Record<string, number>> {
    const worker = new Worker(WORKER_URL, { type: "module", name: `dataplane-${id}` });
    const slot: Slot = {
      id,
      worker,
      waiting: new Map(),
      alive: true,
      lastDeath: previous?.lastDeath ?? 0,
      recentDeaths: previous?.recentDeaths ?? 0,
    };
    this.#slots[id] = slot;
    worker.onmessage = (e: MessageEvent<FromWorker>) => this.#onMessage(slot, e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#onDeath(slot, e.message);
    };
    const started = this.#next(slot, ["started", "failed"]);
    this.#post(slot, {
      t: "init",
      id,
      counters: this.counters.buffer,
      snapshot: this.#snapshot,
      ports: id === 0 ? this.#knownPorts() : this.#ports,
      datagram: id === 0,
      health: this.#health ? this.#health.status().map((b) => [b.key, b.up]) : [],
    });
    return started.then((m) => {
      if (m.t === "failed") throw new WorkerStartError(m.error, m.bind);
      return (m as { ports: Record<string, number> }).ports;
    });
  }

  /** Ports already chosen (a restarted worker 0 must bind the same ones). */
  #knownPorts(): Record<string, number> | undefined {
    return Object.keys(this.#ports).length ? this.#ports : undefined;
  }

  #onMessage(slot: Slot, m: FromWorker): void {
    if (m.t === "passive") {
      for (const [key, status] of m.events) this.#health?.observe(key, status);
      return;
    }
    const list = slot.waiting.get(m.t);
    const resolve = list?.shift();
    if (resolve) resolve(m);
    if (m.t === "started" || m.t === "failed") slot.waiting.delete(m.t === "started" ? "failed" : "started");
  }

  #next(slot: Slot, kinds: string[]): Promise<FromWorker> {
    return new Promise((resolve) => {
      let done = false;
      const once = (m: FromWorker) => {
        if (done) return;
        done = true;
        resolve(m);
      };
      for (const k of kinds) {
        const list = slot.waiting.get(k) ?? [];
        list.push(once);
        slot.waiting.set(k, list);
      }
    });
  }

  #post(slot: Slot, m: ToWorker): void {
    if (slot.alive) slot.worker.postMessage(m);
  }

  #broadcast(m: ToWorker): void {
    for (const s of this.#slots) if (s) this.#post(s, m);
  }

  #onDeath(slot: Slot, why: string): void {
    if (!slot.alive) return;
    slot.alive = false;
    try {
      slot.worker.terminate();
    } catch { /* gone */ }
    // Anyone waiting on it gets an answer rather than hanging: a start fails, the rest are empty.
    const starting = (slot.waiting.get("started")?.length ?? 0) > 0;
    for (const [kind, list] of slot.waiting) {
      const answer = kind === "started" || kind === "failed"
        ? { t: "failed", error: `worker ${slot.id} died: ${why}`, bind: false }
        : { t: kind, seq: -1, families: [], failures: [], cut: 0 };
      for (const r of list) r(answer as FromWorker);
    }
    slot.waiting.clear();
    this.counters.resetWorker(slot.id);
    if (this.#stopping || !this.#started) return;
    this.#restarts.inc();
    // Back off when a worker keeps dying (e.g. it cannot start at all): 100 ms doubling to 10 s.
    const now = Date.now();
    slot.recentDeaths = now - slot.lastDeath < 30_000 ? slot.recentDeaths + 1 : 0;
    const delay = starting ? 10_000 : Math.min(10_000, 100 * 2 ** slot.recentDeaths);
    this.log.error("data-plane worker died; restarting it", { worker: slot.id, error: why, in_ms: delay });
    const timer = setTimeout(() => {
      if (this.#stopping) return;
      this.#spawn(slot.id, slot).then(
        () => this.log.info("data-plane worker restarted", { worker: slot.id }),
        (e) => this.log.error("data-plane worker failed to restart", { worker: slot.id, error: String(e) }),
      );
    }, delay);
    Deno.unrefTimer(timer);
    slot.lastDeath = now;
  }

  /** For tests and operators: kills one worker as a crash would. */
  crash(id: number): void {
    const s = this.#slots[id];
    if (s) this.#onDeath(s, "killed on request");
  }

  async apply(snapshot: ConfigSnapshot): Promise<void> {
    this.#snapshot = snapshot;
    await Promise.all(
      this.#slots.filter((s) => s?.alive).map((s) => {
        const p = this.#next(s, ["applied"]);
        this.#post(s, { t: "apply", snapshot });
        return p;
      }),
    );
  }

  async rotateCertificates(): Promise<RotationFailure[]> {
    const seq = ++this.#seq;
    const answers = await Promise.all(
      this.#slots.filter((s) => s?.alive).map((s) => {
        const p = this.#next(s, ["rotated"]);
        this.#post(s, { t: "rotate", seq });
        return p;
      }),
    );
    return answers.flatMap((m) => (m as { failures?: RotationFailure[] }).failures ?? []);
  }

  async collect(): Promise<CollectedFamily[]> {
    const seq = ++this.#seq;
    const answers = await Promise.all(
      this.#slots.filter((s) => s?.alive).map((s) => {
        const p = this.#next(s, ["collected"]);
        this.#post(s, { t: "collect", seq });
        return p;
      }),
    );
    return mergeCollected([
      this.registry.collect(),
      ...answers.map((m) => (m as { families?: CollectedFamily[] }).families ?? []),
    ]);
  }

  async drain(timeoutMs: number): Promise<number> {
    this.#stopping = true;
    const answers = await Promise.all(
      this.#slots.filter((s) => s?.alive).map((s) => {
        const p = this.#next(s, ["drained"]);
        this.#post(s, { t: "drain", timeoutMs });
        return p;
      }),
    );
    this.terminate();
    return answers.reduce((n, m) => n + ((m as { cut?: number }).cut ?? 0), 0);
  }

  terminate(): void {
    this.#stopping = true;
    for (const s of this.#slots) {
      if (!s?.alive) continue;
      s.alive = false;
      try {
        s.worker.terminate();
      } catch { /* gone */ }
    }
  }
}
