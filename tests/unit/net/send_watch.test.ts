import assert from "node:assert/strict";
import { SendWatch } from "../../../src/net/send_watch.ts";
import { sweeper } from "../../../src/net/deadlines.ts";

/** A writer the test drives by hand; each check is an expiry the sweeper would run. */
function setup() {
  const w = { busy: false, progress: 0 };
  let stalls = 0;
  const watch = new SendWatch(w, 1000, () => stalls++);
  return { w, watch, stalls: () => stalls };
}

Deno.test("send watch: a write stuck over two whole check intervals is a stall, once", () => {
  const { w, watch, stalls } = setup();
  watch.start();
  watch.onExpire(); // idle
  w.busy = true; // a write starts and never completes
  watch.onExpire(); // busy now, but it may have started just before: not counted yet
  watch.onExpire(); // stuck for one whole interval
  assert.equal(stalls(), 0);
  watch.onExpire(); // and a second one: timeoutMs at least
  assert.equal(stalls(), 1);
  assert.equal(watch.deadline, Infinity, "no further checks after a stall");
  watch.stop();
});

Deno.test("send watch: progress between checks, or no write in flight, is never a stall", () => {
  const { w, watch, stalls } = setup();
  watch.start();
  w.busy = true;
  for (let i = 0; i < 20; i++) {
    if (i % 2 === 0) w.progress++; // a slow writer: one completion every other interval
    watch.onExpire();
  }
  w.busy = false; // waiting for the producer (a slow backend), nothing to send
  for (let i = 0; i < 20; i++) watch.onExpire();
  assert.equal(stalls(), 0);
  assert.ok(Number.isFinite(watch.deadline), "still watching");
  watch.stop();
});

Deno.test("send watch: start and stop register on the sweeper once each", () => {
  const { watch } = setup();
  const before = sweeper.size;
  watch.start();
  watch.start();
  assert.equal(sweeper.size, before + 1);
  assert.ok(watch.deadline > performance.now(), "armed half a timeout ahead");
  watch.stop();
  watch.stop();
  assert.equal(sweeper.size, before);
  assert.equal(watch.deadline, Infinity);
});
