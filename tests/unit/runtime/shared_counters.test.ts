/**
 * SharedCounters: caps over every worker's share, exact under contention (two workers taking the
 * last unit at the same instant: exactly one gets it), and a dead worker's shares released.
 */

import assert from "node:assert/strict";
import { SharedCounters } from "../../../src/runtime/shared_counters.ts";

Deno.test("shared counters: a cap counts every worker's share; release and resetWorker give it back", () => {
  const a = new SharedCounters(undefined, 0, 2);
  const b = new SharedCounters(a.buffer, 1);
  assert.ok(a.takeInFlight(2));
  assert.ok(b.takeInFlight(2));
  assert.equal(a.takeInFlight(2), false, "the cap is global");
  assert.equal(b.takeInFlight(2), false);
  assert.equal(a.inFlight, 2);
  b.releaseInFlight();
  assert.ok(a.takeInFlight(2), "a released unit can be taken by another worker");
  // Worker 0 dies holding two in flight, a listener slot and an address.
  assert.ok(a.takeListener(3, 10));
  assert.ok(a.takeIp("192.0.2.1", 1));
  assert.equal(b.takeIp("192.0.2.1", 1), false);
  a.resetWorker(0);
  assert.equal(b.inFlight, 0);
  assert.equal(b.listenerConnections(3), 0);
  assert.ok(b.takeIp("192.0.2.1", 1), "the dead worker's address slot is free again");
  assert.ok(b.takeInFlight(1));
});

Deno.test("shared counters: two workers taking the last unit at once, 2000 times: exactly one wins each time", async () => {
  const rounds = 2000;
  const counters = new SharedCounters(undefined, 0, 2);
  const sync = new SharedArrayBuffer(16);
  const s = new Int32Array(sync);
  const url = new URL("./shared_counters_worker.ts", import.meta.url).href;
  const workers = [0, 1].map(() => new Worker(url, { type: "module" }));
  try {
    workers.forEach((w, id) => w.postMessage({ buffer: counters.buffer, sync, id, rounds }));
    const view = [new SharedCounters(counters.buffer, 0), new SharedCounters(counters.buffer, 1)];
    const deadline = Date.now() + 60_000;
    let lost = 0;
    for (let round = 1; round <= rounds; round++) {
      const before = [Atomics.load(s, 1), Atomics.load(s, 2)];
      Atomics.store(s, 0, round);
      Atomics.notify(s, 0);
      while (Atomics.load(s, 3) < 2 * round) {
        assert.ok(Date.now() < deadline, `round ${round} did not finish`);
        await new Promise((r) => setTimeout(r, 0));
      }
      const took = [Atomics.load(s, 1) - before[0], Atomics.load(s, 2) - before[1]];
      if (took[0] + took[1] !== 1) lost++;
      assert.equal(counters.inFlight, took[0] + took[1], "the total is what was taken");
      // Give back what was taken, as the worker that took it.
      for (const id of [0, 1]) for (let k = 0; k < took[id]; k++) view[id].releaseInFlight();
    }
    assert.equal(lost, 0, `${lost} of ${rounds} rounds admitted other than exactly one`);
  } finally {
    for (const w of workers) w.terminate();
  }
});
