/**
 * least_connections: the endpoint with the fewest open upstream connections per unit of
 * weight (stats.connections / weight). Suits long-lived connections (WebSocket, gRPC
 * streams), where request counts say little about load. Core in least_loaded.ts.
 */

import type { Endpoint, Picker, PickerOptions } from "./picker.ts";
import { createLeastLoaded } from "./least_loaded.ts";

export function createLeastConnections(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  return createLeastLoaded("least_connections", "connections", endpoints, options);
}
