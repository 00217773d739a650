/**
 * A clock reading shared by everything that runs in one event-loop turn, as nginx caches its
 * time once per event-loop iteration (ngx_time_update after epoll_wait). Each performance.now()
 * is an op call; a busy turn starts, forwards and completes tens of requests, and each of those
 * used to read the clock several times. The cached value is dropped at the end of the turn (a
 * setImmediate, one per turn that read it), so it is never older than the turn that uses it.
 *
 * For measurements (latencies, request start, histograms) and coarse deadlines (seconds-scale
 * timeouts, flood windows) only: two readings in the same turn are equal, and a reading may be as
 * old as the work already done in the turn (sub-millisecond, milliseconds under heavy load).
 */

import { setImmediate } from "node:timers";

let cached = -1;
let scheduled = false;

const endOfTurn = () => {
  cached = -1;
  scheduled = false;
};

/** performance.now() as read once in the current event-loop turn. */
export function turnNow(): number {
  if (cached >= 0) return cached;
  cached = performance.now();
  if (!scheduled) {
    scheduled = true;
    setImmediate(endOfTurn);
  }
  return cached;
}
