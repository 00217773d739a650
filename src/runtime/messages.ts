/**
 * Messages between the control isolate and data-plane workers. Everything that crosses is
 * plain data: config snapshots, health verdicts, passive results, metric families.
 */

import type { ConfigSnapshot } from "../config/types.ts";
import type { CollectedFamily } from "../observability/metrics.ts";
import type { RotationFailure } from "./dataplane.ts";

export type ToWorker =
  | {
    t: "init";
    id: number;
    counters: SharedArrayBuffer;
    snapshot: ConfigSnapshot;
    /** Concrete ports for listeners configured with port 0 (so every worker binds the same one). */
    ports?: Record<string, number>;
    /** UDP listeners have no reusePort in Deno: exactly one worker runs them. */
    datagram: boolean;
    health: Array<[string, boolean]>;
  }
  | { t: "apply"; snapshot: ConfigSnapshot }
  | { t: "health"; key: string; up: boolean }
  | { t: "rotate"; seq: number }
  | { t: "collect"; seq: number }
  | { t: "drain"; timeoutMs: number };

export type FromWorker =
  | { t: "started"; ports: Record<string, number> }
  | { t: "failed"; error: string; bind: boolean }
  | { t: "applied" }
  | { t: "passive"; events: Array<[string, number]> }
  | { t: "collected"; seq: number; families: CollectedFamily[] }
  | { t: "rotated"; seq: number; failures: RotationFailure[] }
  | { t: "drained"; cut: number };
