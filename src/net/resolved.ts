/**
 * One promise, resolved once, for every place that returns "already done" or yields to the
 * rest of the microtask queue.
 *
 * Why not `await null` or a fresh `Promise.resolve()`: either makes a new promise per call, and
 * on the hot path that showed. The HTTP/1.1 client yields once per request (see h1Forward) and
 * `await null` there cost 3 % of the h1-small throughput against awaiting this promise
 * (scripts/bench_ab.sh HEAD 16 2: B/A req/s 1.034, CPU per request 0.970, p99 0.955; an A/A
 * run on the same machine gave 1.001 / 0.998 / 0.996). Both yield exactly one microtask: the
 * order of work is the same, only the allocation and its resolution are gone.
 */
export const RESOLVED: Promise<void> = Promise.resolve();
