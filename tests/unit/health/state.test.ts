import assert from "node:assert/strict";
import { BackendHealth } from "../../../src/health/state.ts";
import { parseStatusRanges } from "../../../src/health/probe.ts";

const outlier = { consecutive5xx: 3, consecutiveFailures: 2, baseEjectionMs: 1000, maxEjectionMs: 2500 };

Deno.test("active: fall failures take a backend down, rise passes bring it back", () => {
  const h = new BackendHealth({ rise: 2, fall: 3 }, undefined);
  assert.equal(h.probe(false, "x", 0), undefined);
  assert.equal(h.probe(false, "x", 1), undefined);
  const down = h.probe(false, "status 500", 2);
  assert.deepEqual(down?.up, false);
  assert.match(down!.reason, /failed 3 active check\(s\): status 500/);
  assert.equal(h.isUsable(3), false);
  assert.equal(h.probe(true, "ok", 4), undefined);
  assert.equal(h.isUsable(4), false, "one pass is not rise=2");
  assert.equal(h.probe(true, "ok", 5)?.up, true);
  assert.equal(h.isUsable(5), true);
});

Deno.test("active: a pass in between resets the failure streak", () => {
  const h = new BackendHealth({ rise: 1, fall: 2 }, undefined);
  h.probe(false, "x", 0);
  h.probe(true, "ok", 1);
  assert.equal(h.probe(false, "x", 2), undefined);
  assert.equal(h.isUsable(2), true);
});

Deno.test("passive: consecutive 5xx eject for base × times, capped, and expire", () => {
  const h = new BackendHealth(undefined, outlier);
  h.passive(500, 0, true);
  h.passive(502, 0, true);
  const t = h.passive(503, 0, true);
  assert.equal(t?.up, false);
  assert.match(t!.reason, /3 consecutive 5xx/);
  assert.equal(h.isUsable(999), false);
  assert.equal(h.isUsable(1000), true);
  assert.equal(h.edge(1000)?.up, true);
  // second ejection: 2 × base; third: capped at 2500
  for (let i = 0; i < 3; i++) h.passive(500, 2000, true);
  assert.equal(h.ejectedUntil, 4000);
  h.edge(4000);
  for (let i = 0; i < 3; i++) h.passive(500, 5000, true);
  assert.equal(h.ejectedUntil, 7500);
});

Deno.test("passive: a success resets the streak; connect failures count separately", () => {
  const h = new BackendHealth(undefined, outlier);
  h.passive(500, 0, true);
  h.passive(500, 0, true);
  h.passive(200, 0, true);
  h.passive(500, 0, true);
  assert.equal(h.isUsable(0), true);
  h.passive(0, 0, true);
  const t = h.passive(0, 0, true);
  assert.equal(t?.up, false);
  assert.match(t!.reason, /connect failures/);
});

Deno.test("passive: max_ejection_percent (mayEject=false) prevents ejection", () => {
  const h = new BackendHealth(undefined, outlier);
  for (let i = 0; i < 5; i++) h.passive(500, 0, false);
  assert.equal(h.isUsable(0), true);
  assert.equal(h.timesEjected, 0);
});

Deno.test("after an ejection, a backend with active checks must pass rise checks again", () => {
  const h = new BackendHealth({ rise: 2, fall: 3 }, outlier);
  for (let i = 0; i < 3; i++) h.passive(500, 0, true);
  assert.equal(h.isUsable(5000), false, "ejection over, but active checks have not passed yet");
  h.probe(true, "ok", 5000);
  assert.equal(h.isUsable(5000), false);
  h.probe(true, "ok", 5001);
  assert.equal(h.isUsable(5001), true);
});

Deno.test("parseStatusRanges", () => {
  assert.deepEqual(parseStatusRanges("200-399"), [[200, 399]]);
  assert.deepEqual(parseStatusRanges("200, 204-206"), [[200, 200], [204, 206]]);
  assert.equal(parseStatusRanges("399-200"), undefined);
  assert.equal(parseStatusRanges("abc"), undefined);
  assert.equal(parseStatusRanges("700"), undefined);
});
