/**
 * The config-source seam. A source delivers whole TOML documents; the gateway applies each one
 * through its single validate-first, atomic-swap path (Gateway.reload for the file,
 * Gateway.reloadFrom for anything else), so a source never builds or swaps snapshots itself
 * and an invalid document can never get past validation whatever it came from.
 *
 * Two sources exist: file (file_source.ts: the config file, SIGHUP and an optional watch) and
 * etcd (etcd_source.ts: one key, a watch stream, fleet registration, a local cache).
 */

import type { ConfigSnapshot } from "../config/types.ts";
import type { ControlMetrics } from "../observability/gateway_metrics.ts";
import type { ReloadResult } from "../runtime/gateway.ts";

/** What a source needs from the gateway (Gateway implements it). */
export interface ApplyTarget {
  readonly snapshot: ConfigSnapshot;
  readonly controlMetrics: ControlMetrics;
  /** Re-read and apply the config file (SIGHUP). Never rejects. */
  reload(): Promise<ReloadResult>;
  /** Validate and apply a document from elsewhere. Never rejects. */
  reloadFrom(text: string, origin: string): Promise<ReloadResult>;
}

export interface ConfigSource {
  readonly kind: "file" | "etcd";
  /** Begin following changes (after the gateway is ready). */
  start(target: ApplyTarget): void;
  /** SIGHUP: read the source again now and apply what it holds. */
  resync(): Promise<void>;
  /** Stop following; the etcd source also withdraws this instance's registration. */
  stop(): Promise<void>;
}

/** Bounded sleep that ends early when `signal` aborts (never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const id = setTimeout(done, ms);
    function done() {
      clearTimeout(id);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Exponential backoff with jitter: 100 ms doubling per failure, capped at 3 s. */
export function backoffMs(failures: number, random: () => number = Math.random): number {
  const base = Math.min(3000, 100 * 2 ** Math.max(0, Math.min(failures - 1, 10)));
  return Math.round(base * (0.5 + random() * 0.5));
}
