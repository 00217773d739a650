/**
 * The etcd config source. The config is one TOML document at `<prefix>/config`.
 *
 * Boot: range the key (retrying up to control.boot_timeout); validate the document exactly as
 * a file would be; if etcd cannot be reached, or holds no document, or holds an invalid one,
 * start from control.cache_file (the last document this host applied) and say so; with no
 * cache, fail with the reason (BootError carries the exit code).
 *
 * Running: every (re)connection first ranges the key and applies it if it is newer than what
 * is served, then watches from the range's store revision + 1, so nothing between the read and
 * the watch is missed, a compacted watch (canceled with compact_revision) heals by the same
 * re-read, and so does an etcd restored from an older backup. Each PUT goes through
 * Gateway.reloadFrom — the SIGHUP path — so an invalid revision is logged with its number,
 * counted in config_revision_rejected_total, and the last good snapshot keeps serving. When
 * etcd goes away the gateway keeps serving and reconnects with backoff; a resync every 30 s
 * covers a watch stream that went silent without breaking (a half-open TCP connection).
 */

import { ConfigError, describeFsError } from "../config/errors.ts";
import { loadConfigText } from "../config/load.ts";
import type { ConfigSnapshot, ControlConfig } from "../config/types.ts";
import type { Logger } from "../observability/log.ts";
import { VERSION } from "../version.ts";
import { readCache, writeCache } from "./cache.ts";
import { EtcdClient, EtcdError, type EtcdTls, EtcdUnavailableError, type KeyValue } from "./etcd_client.ts";
import { configKey, Registrar } from "./fleet.ts";
import { type ApplyTarget, backoffMs, type ConfigSource, sleep } from "./source.ts";

const RESYNC_INTERVAL_MS = 30_000;

/** Boot could not produce a config: print `message`, exit with `exitCode` (1 runtime, 2 invalid). */
export class BootError extends Error {
  constructor(message: string, readonly exitCode: 1 | 2) {
    super(message);
    this.name = "BootError";
  }
}

export interface InitialConfig {
  snapshot: ConfigSnapshot;
  origin: "etcd" | "cache";
  revision: number;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

/** This process's default fleet name: `<hostname>-<pid>`. */
export function defaultInstanceId(): string {
  let host = "host";
  try {
    host = Deno.hostname();
  } catch { /* --allow-sys=hostname not granted */ }
  return `${host.replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 40)}-${Deno.pid}`;
}

/** Builds an etcd client from [control], reading the TLS files it names. */
export async function clientFromControl(c: ControlConfig): Promise<EtcdClient> {
  let tls: EtcdTls | undefined;
  if (c.tls) {
    const read = async (what: string, p: string | undefined) => {
      if (!p) return undefined;
      try {
        return await Deno.readTextFile(p);
      } catch (e) {
        throw new BootError(`control.tls.${what} ${p}: ${describeFsError(e)}`, 2);
      }
    };
    const ca = await read("ca", c.tls.ca);
    tls = {
      caCerts: ca ? [ca] : undefined,
      cert: await read("cert", c.tls.cert),
      key: await read("key", c.tls.key),
    };
  }
  return new EtcdClient({
    endpoints: c.endpoints,
    username: c.username,
    password: c.password,
    tls,
    requestTimeoutMs: c.request_timeout,
  });
}

export class EtcdSource implements ConfigSource {
  readonly kind = "etcd";
  readonly key: string;
  readonly instanceId: string;
  #target: ApplyTarget | undefined;
  #stop = new AbortController();
  #loops: Promise<void>[] = [];
  /** Revision of the document being served, and the highest revision looked at (applied or refused). */
  #applied = 0;
  #seen = 0;
  #rejected: { revision: number; error: string } | undefined;
  #origin: "etcd" | "cache" = "etcd";
  #queue: Promise<void> = Promise.resolve();
  #registrar: Registrar | undefined;
  #startedAt = new Date().toISOString();
  /** Set when the boot document came from etcd and is not yet in the cache. */
  #pendingCache: { text: string; revision: number } | undefined;

  private constructor(
    readonly control: ControlConfig,
    readonly client: EtcdClient,
    readonly log: Logger,
  ) {
    this.key = configKey(control.prefix);
    this.instanceId = control.instance_id ?? defaultInstanceId();
  }

  static async create(control: ControlConfig, log: Logger): Promise<EtcdSource> {
    return new EtcdSource(control, await clientFromControl(control), log.child({ component: "control" }));
  }

  get appliedRevision(): number {
    return this.#applied;
  }

  /** The first config: from etcd, else from the cache, else a BootError. */
  async initial(): Promise<InitialConfig> {
    const deadline = Date.now() + this.control.boot_timeout;
    let kv: KeyValue | undefined;
    let unreachable: string | undefined;
    for (let attempt = 1;; attempt++) {
      try {
        kv = (await this.client.range(this.key)).kvs[0];
        unreachable = undefined;
        break;
      } catch (e) {
        unreachable = e instanceof EtcdUnavailableError
          ? `etcd unreachable at boot: ${firstLine(e)}`
          : `etcd refused the boot read: ${firstLine(e)}`;
        // A wrong password or a refused request will not fix itself by waiting.
        if (!(e instanceof EtcdUnavailableError) || Date.now() + backoffMs(attempt) > deadline) break;
        await sleep(backoffMs(attempt));
      }
    }
    let why: string;
    let invalid: ConfigError | undefined;
    if (unreachable !== undefined) {
      why = unreachable;
    } else if (!kv) {
      why = `etcd has no config at ${this.key} (push one: expressgateway config push FILE --etcd URL)`;
    } else {
      try {
        const snapshot = await this.#build(kv.value, `etcd:${this.key}@${kv.modRevision}`);
        this.#applied = this.#seen = kv.modRevision;
        this.#origin = "etcd";
        this.#pendingCache = { text: kv.value, revision: kv.modRevision };
        this.log.info("config loaded from etcd", {
          key: this.key,
          revision: kv.modRevision,
          endpoint: this.client.endpoint,
        });
        return { snapshot, origin: "etcd", revision: kv.modRevision };
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        invalid = e;
        this.#seen = kv.modRevision;
        this.#rejected = { revision: kv.modRevision, error: firstLine(e) };
        why = `etcd config revision ${kv.modRevision} is invalid`;
        this.log.error("config revision rejected at boot", {
          key: this.key,
          revision: kv.modRevision,
          error: e.message,
        });
      }
    }
    const fromCache = await this.#fromCache(why);
    if (fromCache) return fromCache;
    const noCache = this.control.cache_file
      ? `no cached config at ${this.control.cache_file}`
      : "no control.cache_file configured";
    if (invalid) throw new BootError(`${invalid.message}\nexpressgateway: ${why} and ${noCache}`, 2);
    throw new BootError(`${why}; ${noCache}`, 1);
  }

  async #fromCache(why: string): Promise<InitialConfig | undefined> {
    const path = this.control.cache_file;
    if (!path) return undefined;
    let cached;
    try {
      cached = await readCache(path);
    } catch (e) {
      throw new BootError(`${why}; ${firstLine(e)}`, 1);
    }
    if (!cached) return undefined;
    if (cached.key !== this.key) {
      throw new BootError(`${why}; cache ${path} holds ${cached.key}, not ${this.key}`, 1);
    }
    let snapshot: ConfigSnapshot;
    try {
      snapshot = await this.#build(cached.text, `cache:${path}@${cached.revision}`);
    } catch (e) {
      throw new BootError(`${why}; cached config ${path} is not valid either: ${firstLine(e)}`, 1);
    }
    this.#applied = cached.revision;
    this.#seen = Math.max(this.#seen, cached.revision);
    this.#origin = "cache";
    this.log.warn("starting from the cached config", { reason: why, cache: path, revision: cached.revision });
    return { snapshot, origin: "cache", revision: cached.revision };
  }

  /** Validates like a file, then puts this host's [control] in (the document's own is ignored). */
  async #build(text: string, origin: string): Promise<ConfigSnapshot> {
    const s = await loadConfigText(text, origin);
    return Object.freeze({ ...s, config: Object.freeze({ ...s.config, control: this.control }) });
  }

  start(target: ApplyTarget): void {
    this.#target = target;
    const m = target.controlMetrics;
    m.configRevisionApplied.set(this.#applied);
    if (this.#rejected) m.configRevisionRejected.inc();
    this.#registrar = new Registrar(
      this.client,
      this.control.prefix,
      {
        id: this.instanceId,
        applied_revision: this.#applied,
        digest: target.snapshot.digest,
        started_at: this.#startedAt,
        version: VERSION,
        origin: this.#origin,
        rejected_revision: this.#rejected?.revision,
        rejected_error: this.#rejected?.error,
        hostname: safeHostname(),
        pid: Deno.pid,
      },
      Math.round(this.control.lease_ttl / 1000),
      this.log,
    );
    this.#registrar.start();
    if (this.#pendingCache) {
      const p = this.#pendingCache;
      this.#pendingCache = undefined;
      this.#serial(() => this.#saveCache(p.text, p.revision));
    }
    this.#loops.push(this.#watchLoop(), this.#resyncLoop());
  }

  /**
   * SIGHUP: read the key now and apply it if it differs from what is served — a revision
   * refused earlier included, since what made it fail may be fixed on this host now (a
   * certificate file that was missing).
   */
  async resync(): Promise<void> {
    try {
      const r = await this.client.range(this.key);
      await this.#consider(r.kvs[0], r.revision, true);
    } catch (e) {
      this.log.warn("config resync failed; keeping the current config", { error: firstLine(e) });
    }
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await Promise.all(this.#loops);
    await this.#queue;
    await this.#registrar?.stop();
    this.client.close();
  }

  async #watchLoop(): Promise<void> {
    const signal = this.#stop.signal;
    const metrics = this.#target!.controlMetrics;
    let failures = 0;
    let established = 0;
    while (!signal.aborted) {
      try {
        const r = await this.client.range(this.key);
        await this.#consider(r.kvs[0], r.revision);
        let resumed = false;
        for await (const msg of this.client.watch(this.key, r.revision + 1, signal)) {
          // A watch etcd refuses arrives as created + canceled: check canceled first.
          if (msg.canceled) {
            if (msg.compactRevision > 0) {
              // Our start revision was compacted away: re-read with a range and watch again.
              this.log.warn("etcd watch canceled by compaction; re-reading the config", {
                compact_revision: msg.compactRevision,
              });
              resumed = true;
              break;
            }
            throw new EtcdError(`watch canceled: ${msg.cancelReason || "no reason given"}`);
          }
          if (msg.created) {
            metrics.controlSourceUp.set(1);
            if (established++ > 0) metrics.controlWatchRestarts.inc();
            if (failures > 0) {
              this.log.info("etcd watch re-established", {
                endpoint: this.client.endpoint,
                after_failures: failures,
              });
            }
            failures = 0;
            continue;
          }
          // Several events in one message: only the newest document matters.
          const last = msg.events[msg.events.length - 1];
          if (!last) continue;
          if (last.type === "DELETE") {
            this.log.warn("config key deleted in etcd; keeping the current config", {
              key: this.key,
              revision: last.kv.modRevision,
            });
            continue;
          }
          await this.#consider(last.kv, msg.revision);
        }
        if (signal.aborted) break;
        if (!resumed) throw new EtcdUnavailableError("watch stream ended");
      } catch (e) {
        if (signal.aborted) break;
        metrics.controlSourceUp.set(0);
        failures++;
        const fields = { endpoint: this.client.endpoint, error: firstLine(e), failures };
        if (failures === 1) {
          this.log.warn("etcd unavailable; serving the current config and retrying", fields);
        } else this.log.debug("etcd still unavailable", fields);
        await sleep(backoffMs(failures), signal);
      }
    }
    metrics.controlSourceUp.set(0);
  }

  async #resyncLoop(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await sleep(RESYNC_INTERVAL_MS, signal);
      if (signal.aborted) break;
      try {
        const r = await this.client.range(this.key);
        await this.#consider(r.kvs[0], r.revision);
      } catch { /* the watch loop reports outages */ }
    }
  }

  /** Runs `fn` after every earlier apply/cache write: applies happen one at a time, in order. */
  #serial(fn: () => Promise<void>): Promise<void> {
    const next = this.#queue.then(fn, fn).catch((e) => {
      this.log.error("config source step failed (bug: please report)", { error: String(e?.stack ?? e) });
    });
    this.#queue = next;
    return next;
  }

  /**
   * Apply `kv` if it is a revision not yet looked at, or (`retry`, or the store was rewound
   * past us) any revision other than the one served.
   */
  #consider(kv: KeyValue | undefined, storeRevision: number, retry = false): Promise<void> {
    return this.#serial(async () => {
      if (!kv) return; // no document (deleted or never pushed): keep serving what we have
      const rev = kv.modRevision;
      const rewound = storeRevision < this.#seen; // etcd restored from an older backup
      if (rev <= this.#seen && !((rewound || retry) && rev !== this.#applied)) return;
      if (this.#stop.signal.aborted) return;
      const result = await this.#target!.reloadFrom(kv.value, `etcd:${this.key}@${rev}`);
      const metrics = this.#target!.controlMetrics;
      if (result.applied) {
        this.#seen = this.#applied = rev;
        this.#origin = "etcd";
        this.#rejected = undefined;
        metrics.configRevisionApplied.set(rev);
        this.log.info("config revision applied", {
          key: this.key,
          revision: rev,
          digest: result.snapshot?.digest.slice(0, 12),
        });
        this.#registrar?.update({
          applied_revision: rev,
          digest: result.snapshot?.digest ?? "",
          origin: "etcd",
          rejected_revision: undefined,
          rejected_error: undefined,
          // Parts a reload cannot change (binds, workers…): applied at this gateway's next restart.
          restart_required: result.skipped.length > 0 ? result.skipped : undefined,
        });
        await this.#saveCache(kv.value, rev);
      } else if (result.notReady) {
        // Draining: nothing new should be applied; leave #seen so nothing is marked handled.
      } else {
        this.#seen = rev;
        const error = (result.error ?? "unknown error").split("\n")[0].slice(0, 300);
        this.#rejected = { revision: rev, error };
        metrics.configRevisionRejected.inc();
        this.log.error("config revision rejected; keeping the last good config", {
          key: this.key,
          revision: rev,
          serving_revision: this.#applied,
          error: result.error,
        });
        this.#registrar?.update({ rejected_revision: rev, rejected_error: error });
      }
    });
  }

  async #saveCache(text: string, revision: number): Promise<void> {
    const path = this.control.cache_file;
    if (!path) return;
    try {
      await writeCache(path, { text, revision, key: this.key });
    } catch (e) {
      this.log.warn("could not write the config cache", { cache: path, error: firstLine(e) });
    }
  }
}

function safeHostname(): string | undefined {
  try {
    return Deno.hostname();
  } catch {
    return undefined;
  }
}
