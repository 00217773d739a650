/**
 * StreamTable (src/http/h2/stream_table.ts) replaces a Map of a connection's open streams. A
 * differential run against a Map covers growth, probe runs that wrap around the table's end
 * and backward-shift deletion, which is where an open-addressing table goes wrong.
 */

import assert from "node:assert/strict";
import { StreamTable } from "../../../src/http/h2/stream_table.ts";

/** xorshift32: the same sequence every run. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

function assertSame(table: StreamTable<string>, ref: Map<number, string>, probe: number[]): void {
  assert.equal(table.size, ref.size);
  for (const id of probe) assert.equal(table.get(id), ref.get(id), `stream ${id}`);
  assert.deepEqual(new Set(table.values()), new Set(ref.values()));
}

Deno.test("StreamTable agrees with a Map over random opens and closes", () => {
  for (const seed of [1, 7, 42, 1234567]) {
    const next = rng(seed);
    const table = new StreamTable<string>();
    const ref = new Map<number, string>();
    // Client streams 1, 3, 5, ... opened in order, closed in random order, up to 200 open;
    // IDs from the top of the range too (wrap-around of `id >>> 1` into the table).
    let nextId = 1;
    const universe: number[] = [];
    for (let op = 0; op < 20_000; op++) {
      const open = [...ref.keys()];
      if (open.length < 200 && (open.length === 0 || next() < 0.55)) {
        const id = next() < 0.05 ? 0x7fffffff - 2 * Math.floor(next() * 64) : nextId;
        if (id === nextId) nextId += 2;
        const value = `s${id}:${op}`;
        table.set(id, value);
        ref.set(id, value);
        universe.push(id);
      } else {
        const id = open[Math.floor(next() * open.length)];
        assert.equal(table.delete(id), true);
        ref.delete(id);
        assert.equal(table.delete(id), false);
      }
      if (op % 997 === 0) assertSame(table, ref, universe.slice(-400));
    }
    assertSame(table, ref, universe.slice(-2000));
  }
});

Deno.test("StreamTable: set replaces, get of an unknown ID is undefined, 0 and out-of-range IDs are refused", () => {
  const t = new StreamTable<string>();
  assert.equal(t.get(1), undefined);
  t.set(1, "a");
  t.set(1, "b");
  assert.equal(t.size, 1);
  assert.equal(t.get(1), "b");
  assert.ok(t.has(1) && !t.has(3));
  assert.throws(() => t.set(0, "x"), RangeError);
  assert.throws(() => t.set(2 ** 31, "x"), RangeError);
  // Growth keeps every entry.
  for (let id = 3; id < 3 + 2 * 100; id += 2) t.set(id, `v${id}`);
  assert.equal(t.size, 101);
  for (let id = 3; id < 3 + 2 * 100; id += 2) assert.equal(t.get(id), `v${id}`);
});
