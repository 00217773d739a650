/**
 * A worker for shared_counters.test.ts: waits at a shared barrier each round, then takes one unit
 * of the in-flight counter (cap 1) at the same moment as the other worker and reports how it went.
 */

import { SharedCounters } from "../../../src/runtime/shared_counters.ts";

self.onmessage = (
  e: MessageEvent<{ buffer: SharedArrayBuffer; sync: SharedArrayBuffer; id: number; rounds: number }>,
) => {
  const { buffer, sync, id, rounds } = e.data;
  const counters = new SharedCounters(buffer, id);
  // sync[0]: the round the main thread released; sync[1 + id]: this worker's wins; sync[3]: done.
  const s = new Int32Array(sync);
  for (let round = 1; round <= rounds; round++) {
    // Spin (bounded), not Atomics.wait: both workers must leave the barrier at the same instant.
    for (let spins = 0; Atomics.load(s, 0) < round && spins < 1e9; spins++);
    if (counters.takeInFlight(1)) Atomics.add(s, 1 + id, 1);
    Atomics.add(s, 3, 1);
  }
};
