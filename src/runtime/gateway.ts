/**
 * Gateway lifecycle, owned by the control side: boot (admin + data plane, all listeners or
 * none), validate-first reload (SIGHUP), certificate rotation (SIGUSR1) and drain
 * (SIGTERM/SIGINT). Probes follow the phase: /readyz is 503 while starting and draining.
 */

import { liveApplicable, restartRequiredChanges } from "../config/diff.ts";
import { ConfigError } from "../config/errors.ts";
import { loadConfigFile, loadConfigText } from "../config/load.ts";
import type { ConfigSnapshot, ListenerConfig } from "../config/types.ts";
import { AdminServer, type Phase } from "../observability/admin.ts";
import { ControlMetrics } from "../observability/gateway_metrics.ts";
import { flushLogs, type Logger } from "../observability/log.ts";
import { type CollectedFamily, mergeCollected, Registry } from "../observability/metrics.ts";
import { VERSION } from "../version.ts";
import { DataPlane, type RotationFailure } from "./dataplane.ts";
import { WorkerGroup } from "./workers.ts";
import { HealthManager } from "../health/manager.ts";
import { certificateExpiries, certificateFiles, expiryWarnings } from "../security/cert_expiry.ts";
import { healthMetrics } from "../health/metrics.ts";

export interface ReloadResult {
  applied: boolean;
  error?: string;
  /** The document was invalid (never applied), as opposed to "not ready" or "failed while applying". */
  invalid?: boolean;
  /** Not attempted: the gateway is starting or draining. */
  notReady?: boolean;
  skipped: string[];
  /** The snapshot now in use, when applied. */
  snapshot?: ConfigSnapshot;
}

export class Gateway {
  #phase: Phase = "starting";
  #snapshot: ConfigSnapshot;
  readonly controlRegistry = new Registry();
  readonly controlMetrics = new ControlMetrics(this.controlRegistry);
  /** One in-process data plane, or N workers (runtime.workers) behind the same calls. */
  readonly dataPlane: DataPlane | WorkerGroup;
  readonly admin: AdminServer;
  /** Active probes and passive verdicts live on the control side; data planes read verdicts. */
  readonly health: HealthManager;
  adminPort = 0;
  #reloading: Promise<ReloadResult> | undefined;
  #startup: Promise<void> | undefined;
  #stopping: Promise<number> | undefined;

  constructor(snapshot: ConfigSnapshot, readonly configPath: string, readonly log: Logger) {
    this.#snapshot = snapshot;
    const workers = resolveWorkers(snapshot.config.runtime.workers);
    this.dataPlane = workers === 1 ? new DataPlane(log) : new WorkerGroup(workers, log);
    this.health = new HealthManager(log, healthMetrics(this.controlRegistry));
    this.dataPlane.attachHealth(this.health);
    this.admin = new AdminServer({
      phase: () => this.#phase,
      collect: () => this.collect(),
      tokenHash: () => this.#snapshot.config.admin.api_token_hash,
      status: (name) => name === "backends" ? { backends: this.health.status() } : undefined,
      restartWorker: (id) => {
        if (!(this.dataPlane instanceof WorkerGroup) || id < 0 || id >= this.dataPlane.size) return false;
        this.dataPlane.crash(id);
        return true;
      },
      onError: (e) =>
        this.log.error("admin request failed (bug: please report)", {
          error: String((e as Error)?.stack ?? e),
        }),
    });
    this.controlMetrics.info.with(VERSION).set(1);
    this.#noteSnapshot(snapshot);
  }

  get phase(): Phase {
    return this.#phase;
  }

  get snapshot(): ConfigSnapshot {
    return this.#snapshot;
  }

  async collect(): Promise<CollectedFamily[]> {
    return mergeCollected([this.controlRegistry.collect(), await this.dataPlane.collect()]);
  }

  /** Admin first (probes answer "starting"), then every listener; any failure undoes the rest. */
  start(): Promise<void> {
    this.#startup ??= this.#boot();
    return this.#startup;
  }

  async #boot(): Promise<void> {
    const cfg = this.#snapshot.config;
    this.log.configure(cfg.observability.log_level, cfg.observability.log_format);
    this.adminPort = this.admin.start(cfg.observability.admin_bind);
    this.health.apply(this.#snapshot);
    try {
      await this.dataPlane.start(this.#snapshot);
      await this.#startXdp();
      await this.#noteCertificates(cfg.listeners);
    } catch (e) {
      this.health.stop();
      this.#xdp?.close();
      if ("terminate" in this.dataPlane) this.dataPlane.terminate();
      else this.dataPlane.stop();
      await this.admin.stop();
      throw e;
    }
    this.#phase = "ready";
    this.log.info("gateway ready", {
      config: this.configPath,
      generation: this.#snapshot.generation,
      listeners: this.dataPlane.ports(),
      workers: this.dataPlane instanceof WorkerGroup ? this.dataPlane.size : 1,
      admin: cfg.observability.admin_bind,
      admin_port: this.adminPort,
      version: VERSION,
    });
  }

  /** SIGHUP: validate the file first; apply live-swappable parts; keep serving on any error. */
  reload(): Promise<ReloadResult> {
    return this.#reloadWith(() => loadConfigFile(this.configPath), this.configPath, true);
  }

  /**
   * The same validate-first, atomic-swap path for a document that came from a config source
   * (etcd) rather than the file. `origin` names it in logs and errors (e.g. the key and
   * revision). The document's own [control] table is ignored: how this process finds its
   * config is a local decision (docs/CONTROL_PLANE.md).
   */
  reloadFrom(text: string, origin: string): Promise<ReloadResult> {
    return this.#reloadWith(() => loadConfigText(text, origin), origin, false);
  }

  #reloadWith(
    load: () => Promise<ConfigSnapshot>,
    origin: string,
    controlFromDocument: boolean,
  ): Promise<ReloadResult> {
    // Reloads are serialized: a second SIGHUP while one is applying waits for it.
    const run = async (): Promise<ReloadResult> => {
      if (this.#phase !== "ready") {
        // Starting: the boot snapshot is being applied. Draining: nothing new should start.
        this.log.warn("config reload ignored", { phase: this.#phase });
        return { applied: false, notReady: true, error: `gateway is ${this.#phase}`, skipped: [] };
      }
      let next: ConfigSnapshot;
      try {
        next = await load();
      } catch (e) {
        const error = e instanceof ConfigError ? e.message : String(e);
        this.controlMetrics.reloadFailures.inc();
        this.log.error("config reload rejected; still serving the previous config", {
          config: origin,
          generation: this.#snapshot.generation,
          error,
        });
        return { applied: false, invalid: true, error, skipped: [] };
      }
      const live = this.#snapshot.config;
      const skipped = restartRequiredChanges(live, next.config);
      // The config source itself ([control]) is chosen at boot; changing it needs a restart.
      if (controlFromDocument && JSON.stringify(live.control) !== JSON.stringify(next.config.control)) {
        skipped.push("control (config source settings)");
      }
      for (const change of skipped) this.log.warn("reload: change needs a restart; skipped", { change });
      const effective: ConfigSnapshot = Object.freeze({
        ...next,
        config: { ...liveApplicable(live, next.config), control: live.control },
      });
      try {
        await this.dataPlane.apply(effective);
      } catch (e) {
        this.controlMetrics.reloadFailures.inc();
        const error = e instanceof Error ? e.message : String(e);
        this.log.error("config reload failed while applying; previous config kept", { error });
        return { applied: false, error, skipped };
      }
      this.#snapshot = effective;
      this.health.apply(effective);
      await this.#reconfigureXdp(effective);
      this.#noteSnapshot(effective);
      this.controlMetrics.reloads.inc();
      const o = effective.config.observability;
      this.log.configure(o.log_level, o.log_format);
      this.log.info("config reloaded", {
        config: origin,
        generation: effective.generation,
        digest: effective.digest.slice(0, 12),
        skipped,
      });
      return { applied: true, skipped, snapshot: effective };
    };
    // Never rejects: SIGHUP handlers fire and forget, so a bug here is logged and counted.
    const guarded = () =>
      run().catch((e): ReloadResult => {
        this.controlMetrics.reloadFailures.inc();
        const error = e instanceof Error ? e.message : String(e);
        this.log.error("config reload failed; previous config kept", { error });
        return { applied: false, error, skipped: [] };
      });
    const chained = (this.#reloading ?? Promise.resolve()).then(guarded, guarded);
    this.#reloading = chained;
    return chained;
  }

  /** SIGUSR1: new handshakes get the certificates now on disk; open connections are untouched. */
  async rotateCertificates(): Promise<RotationFailure[]> {
    const failures = await this.dataPlane.rotateCertificates();
    // Listeners that failed kept their certificates, and quic listeners are not rotated
    // (docs/QUIC.md): their gauges stay.
    const failed = new Set(failures.map((f) => f.listener));
    await this.#noteCertificates(
      this.#snapshot.config.listeners.filter((l) => l.protocol === "https" && !failed.has(l.name)),
    );
    if (failures.length === 0) {
      this.controlMetrics.certReloads.with("success").inc();
      this.log.info("TLS certificates reloaded");
    } else {
      this.controlMetrics.certReloads.with("failure").inc();
      for (const f of failures) {
        this.log.error("TLS certificate reload failed; previous certificates kept", { ...f });
      }
    }
    return failures;
  }

  /**
   * SIGTERM: readyz 503 → stop accepting → finish in-flight up to drain_timeout → close.
   * Idempotent: a second SIGTERM/SIGINT gets the same drain (it neither restarts the clock nor
   * cuts it short). During startup it first lets the binds settle, so nothing is leaked.
   */
  drain(): Promise<number> {
    this.#stopping ??= this.#drain();
    return this.#stopping;
  }

  async #drain(): Promise<number> {
    if (this.#startup) await this.#startup.catch(() => {});
    this.#phase = "draining";
    const timeout = this.#snapshot.config.runtime.drain_timeout;
    // Worker isolates do not report a live count (-1): then the line says nothing rather than -1.
    const open = this.dataPlane.connectionCount;
    this.log.info("draining", { timeout_ms: timeout, ...(open >= 0 ? { connections: open } : {}) });
    let cut = 0;
    try {
      this.health.stop();
      cut = await this.dataPlane.drain(timeout);
    } finally {
      // Detach last: the fast path keeps forwarding established flows while the listeners drain.
      this.#xdp?.close();
      this.#phase = "stopped";
      this.log.info("drained", { cut_off: cut });
      await this.admin.stop();
      flushLogs();
    }
    return cut;
  }

  /** For tests and tools in this process. */
  get workerGroup(): WorkerGroup | undefined {
    return this.dataPlane instanceof WorkerGroup ? this.dataPlane : undefined;
  }

  /** The XDP fast path, loaded by dynamic import only when runtime.xdp_enabled. */
  #xdp: { reconfigure(o: unknown): void; close(): void } | undefined;

  async #startXdp(): Promise<void> {
    const cfg = this.#snapshot.config;
    if (!cfg.runtime.xdp_enabled) return;
    const { XdpController } = await import("../xdp/controller.ts");
    const { xdpOptionsFromConfig } = await import("../xdp/from_config.ts");
    this.#xdp = XdpController.start(xdpOptionsFromConfig(cfg), {
      registry: this.controlRegistry,
      log: this.log,
    });
    this.log.info("XDP fast path attached", {
      interfaces: cfg.xdp!.interfaces,
      vip: `${cfg.xdp!.vip}:${cfg.xdp!.port}`,
    });
  }

  /** SIGHUP: the backend set changes in place (flows stay on their backend); never detaches. */
  async #reconfigureXdp(s: ConfigSnapshot): Promise<void> {
    if (!this.#xdp) return;
    try {
      const { xdpOptionsFromConfig } = await import("../xdp/from_config.ts");
      this.#xdp.reconfigure(xdpOptionsFromConfig(s.config));
    } catch (e) {
      this.log.error("XDP reconfigure failed; the fast path keeps its previous backends", {
        error: e instanceof Error ? e.message : String(e),
      });
    }
  }

  /**
   * The expiry gauge of each certificate file of `listeners`, read from disk just after they
   * loaded it (boot, SIGUSR1). An unparsable file loses its series and is logged; an expired
   * one is served all the same (as nginx and HAProxy do) and logged.
   */
  async #noteCertificates(listeners: readonly ListenerConfig[]): Promise<void> {
    const gauge = this.controlMetrics.certExpiry;
    const entries = await certificateExpiries(certificateFiles(listeners));
    for (const e of entries) {
      if (Number.isNaN(e.notAfter)) gauge.removeMatching({ listener: e.listener, file: e.file });
      else gauge.with(e.listener, e.file).set(Math.floor(e.notAfter / 1000));
    }
    for (const w of expiryWarnings(entries, Date.now())) this.log.warn(w.msg, w.fields);
  }

  #noteSnapshot(s: ConfigSnapshot): void {
    this.controlMetrics.configGeneration.set(s.generation);
    this.controlMetrics.configLoadedAt.set(Math.floor(s.loadedAt / 1000));
  }
}

/** "auto" → one worker per core (navigator.hardwareConcurrency), else the configured count. */
export function resolveWorkers(setting: "auto" | number): number {
  if (setting !== "auto") return setting;
  return Math.max(1, navigator.hardwareConcurrency || 1);
}
