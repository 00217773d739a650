/** Shared helpers for the h2 codec tests. */

import assert from "node:assert/strict";
import { concat as concatParts } from "../../helpers/common.ts";

/** "82 86 8441" → bytes; whitespace is ignored. */
export function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  assert.equal(clean.length % 2, 0, "odd hex length");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Deterministic PRNG (mulberry32) so fuzz-ish tests are reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Runs fn, which must throw, and returns what it threw. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  assert.fail("expected an exception");
}

/** tests/helpers/common.ts concat() with the parts as arguments (the frame tests join a few). */
export function concat(...parts: Uint8Array[]): Uint8Array {
  return concatParts(parts);
}
