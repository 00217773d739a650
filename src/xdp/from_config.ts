/**
 * The `[xdp]` table plus its pool's backends → XdpOptions. Loaded only by dynamic import
 * (like everything under src/xdp), so a gateway with XDP off never touches this code.
 */

import type { GatewayConfig } from "../config/types.ts";
import { parseHostPort } from "../config/units.ts";
import type { XdpOptions } from "./options.ts";

export function xdpOptionsFromConfig(cfg: GatewayConfig): XdpOptions {
  const x = cfg.xdp!;
  const pool = cfg.pools.find((p) => p.name === x.pool);
  return {
    interfaces: [...x.interfaces],
    mode: x.mode,
    fallbackToGeneric: x.fallback_to_generic,
    vip: x.vip,
    port: x.port,
    protocol: x.protocol,
    backends: (pool?.backends ?? []).filter((b) => b.weight > 0).map((b) => {
      const hp = parseHostPort(b.address)!;
      return { address: hp.host, port: hp.port, weight: b.weight };
    }),
    tableSize: x.table_size,
    newFlowsPerSecond: x.new_flows_per_second,
    newFlowsBurst: x.new_flows_burst || undefined,
    flowTableSize: x.flow_table_size,
    objectPath: x.object_path,
  };
}
