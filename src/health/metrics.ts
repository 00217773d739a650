/** Metric families of the health subsystem (registered on the control registry). */

import type { Registry } from "../observability/metrics.ts";
import type { HealthMetrics } from "./manager.ts";

const P = "expressgateway_";

export function healthMetrics(r: Registry): HealthMetrics {
  return {
    backendUp: r.gauge(
      `${P}backend_up`,
      "1 when the backend may be picked (active checks up and not ejected), else 0.",
      [
        "pool",
        "backend",
      ],
    ),
    transitions: r.counter(
      `${P}health_transitions_total`,
      "Backend health changes, by direction (up, down).",
      [
        "pool",
        "backend",
        "to",
      ],
    ),
    ejections: r.counter(`${P}outlier_ejections_total`, "Passive outlier ejections per backend.", [
      "pool",
      "backend",
    ]),
    poolPanic: r.gauge(`${P}pool_panic`, "1 while a pool has too few healthy backends and picks among all.", [
      "pool",
    ]),
    probes: r.counter(`${P}health_probes_total`, "Active probes by result (pass, fail).", [
      "pool",
      "backend",
      "result",
    ]),
  };
}
