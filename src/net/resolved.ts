/**
 * One promise, resolved once, for every place that returns "already done" or yields to the
 * rest of the microtask queue (`await RESOLVED`). `await null` or a fresh `Promise.resolve()`
 * yields the same single microtask but makes a new promise per call; this makes none. The
 * order of work is the same either way.
 *
 * What it is worth is small and was not pinned down: one paired run of scripts/bench_ab.sh
 * said h1-small +3 %, but runs of the same comparison with fresh processes differ by a few per
 * cent (docs/benchmarks.md, "Launch-to-launch variance"), so only the sum of this stop's changes
 * is reported there.
 */
export const RESOLVED: Promise<void> = Promise.resolve();
