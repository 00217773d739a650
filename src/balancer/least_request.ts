/**
 * least_request: the endpoint with the fewest requests in flight per unit of weight
 * (stats.inFlight / weight), compared exactly as Envoy's least_request does with unequal
 * weights. A full scan rather than Envoy's default of 2 random choices (that is p2c here).
 * Core in least_loaded.ts.
 */

import type { Endpoint, Picker, PickerOptions } from "./picker.ts";
import { createLeastLoaded } from "./least_loaded.ts";

export function createLeastRequest(endpoints: readonly Endpoint[], options: PickerOptions = {}): Picker {
  return createLeastLoaded("least_request", "inFlight", endpoints, options);
}
