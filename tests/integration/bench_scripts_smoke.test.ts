/**
 * The small benchmark scripts cannot rot: scripts/bench_floor.sh (nginx, the bare Deno relay and
 * the gateway in alternating h1-small rounds), scripts/bench_h2_cpu.sh (nghttpx and the gateway
 * in alternating h2-small rounds), scripts/bench_tls_stall.sh (an https download with
 * and without TCP_NODELAY on the listener), scripts/bench_ab.sh (two revisions of the gateway in
 * interleaved slices) and scripts/bench_gc.sh (the gateway's scavenges under load) run for real,
 * briefly, and print every number they promise;
 * afterwards none of the processes they started is left and their work directories are gone. No
 * timing is asserted.
 */

import assert from "node:assert/strict";
import { run } from "../helpers/run.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** The eg-<name>.* work directories in the temp dir (the scripts create one each). */
async function workDirs(prefix: string): Promise<string[]> {
  const tmp = Deno.env.get("TMPDIR") ?? "/tmp";
  const out: string[] = [];
  for await (const e of Deno.readDir(tmp)) if (e.name.startsWith(prefix)) out.push(e.name);
  return out;
}

/** Processes whose command line mentions `needle` (other than this test's own). */
async function running(needle: string): Promise<string[]> {
  const r = await run("pgrep", ["-af", needle]);
  return r.stdout.split("\n").filter((l) => l.trim() !== "" && !l.includes("pgrep"));
}

Deno.test("scripts/bench_floor.sh: a row per proxy with req/s, CPU and user CPU per request, ratios, nothing left", async () => {
  const before = await workDirs("eg-floor.");
  const r = await run("bash", [`${ROOT}scripts/bench_floor.sh`, "1", "1"], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  for (const proxy of ["nginx", "floor", "gateway"]) {
    const row = r.stdout.split("\n").find((l) => l.startsWith(`${proxy} `));
    assert.ok(row, `no ${proxy} row in:\n${r.stdout}`);
    const [, rps, cpu, user] = row.trim().split(/\s+/);
    assert.ok(Number(rps) > 0 && Number(cpu) > 0 && Number(user) > 0 && Number(user) <= Number(cpu), row);
  }
  assert.match(r.stdout, /floor\/nginx \d+\.\d\d +gateway\/nginx \d+\.\d\d +gateway\/floor \d+\.\d\d/);
  assert.deepEqual(await workDirs("eg-floor."), before, "the work directory was removed");
  assert.deepEqual(await running("bench_floor_relay.ts"), [], "the relay was stopped");
});

Deno.test("scripts/bench_h2_cpu.sh: a row per proxy with req/s, CPU and user CPU per request, the ratio, nothing left", async () => {
  const before = await workDirs("eg-h2cpu.");
  const r = await run("bash", [`${ROOT}scripts/bench_h2_cpu.sh`, "1", "1"], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
  for (const proxy of ["nghttpx", "gateway"]) {
    const row = r.stdout.split("\n").find((l) => l.startsWith(`${proxy} `));
    assert.ok(row, `no ${proxy} row in:\n${r.stdout}`);
    const [, rps, cpu, user] = row.trim().split(/\s+/);
    assert.ok(Number(rps) > 0 && Number(cpu) > 0 && Number(user) > 0 && Number(user) <= Number(cpu), row);
  }
  assert.match(r.stdout, /gateway\/nghttpx \d+\.\d\d/);
  assert.deepEqual(await workDirs("eg-h2cpu."), before, "the work directory was removed");
  assert.deepEqual(await running("nghttpx.conf"), [], "nghttpx was stopped");
});

Deno.test("scripts/bench_tls_stall.sh: both modes download 20 MB and time 20 requests each, nothing left", async () => {
  const before = await workDirs("eg-tls-stall.");
  const r = await run("bash", [`${ROOT}scripts/bench_tls_stall.sh`], { timeoutMs: 240_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /^with TCP_NODELAY on the listener$/m, out);
  assert.match(out, /^without TCP_NODELAY on the listener \(the gateway warned at start\)$/m, out);
  assert.equal(out.match(/20 MB: 20000000 bytes in \d+\.\d\d s/g)?.length, 2, out);
  assert.equal(out.match(/curl --http(1\.1|2), 20 sequential requests: \d+ over 30 ms/g)?.length, 4, out);
  assert.deepEqual(await workDirs("eg-tls-stall."), before, "the work directory was removed");
  assert.deepEqual(await running("eg-tls-stall"), [], "the gateways and nginx were stopped");
});

Deno.test("scripts/bench_ab.sh: HEAD against the working tree, paired ratios, worktree and processes gone", async () => {
  const before = await workDirs("eg-ab.");
  for (const mode of [[], ["--h2", "--respond"], ["--close"]]) {
    const h2 = mode.includes("--h2");
    const r = await run("bash", [`${ROOT}scripts/bench_ab.sh`, ...mode, "HEAD", "2", "1"], {
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.equal(
      out.match(
        /^slice \d: A \d+\.\d+ req\/s \d+\.\d\d µs\/req p99 (\d+(\.\d+)?|-) µs +B \d+\.\d+ req\/s \d+\.\d\d µs\/req p99 (\d+(\.\d+)?|-) µs$/gm,
      )?.length,
      2,
      out,
    );
    assert.match(
      out,
      h2
        ? /load: h2load -c10 -m10 \(h2c\), route: respond$/m
        : mode.includes("--close")
        ? /load: wrk -c50 \(HTTP\/1\.1, Connection: close\), route: pool$/m
        : /load: wrk -c50 \(HTTP\/1\.1\), route: pool$/m,
    );
    assert.match(out, /^B\/A req\/s, paired: \d+\.\d{3} \(q1 \d+\.\d{3}, q3 \d+\.\d{3}\)/m, out);
    assert.match(out, /^B\/A CPU per request, paired: \d+\.\d{3} /m, out);
    // p99 per slice from wrk; h2load reports no percentiles, so none for h2c.
    if (h2) assert.doesNotMatch(out, /p99 latency, paired/, out);
    else assert.match(out, /^B\/A p99 latency, paired: \d+\.\d{3} /m, out);
  }
  const bad = await run("bash", [`${ROOT}scripts/bench_ab.sh`, "no-such-revision"], { timeoutMs: 60_000 });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /cannot check out no-such-revision/);
  assert.deepEqual(await workDirs("eg-ab."), before, "the work directories were removed");
  const trees = await run("git", ["-C", ROOT, "worktree", "list"]);
  assert.doesNotMatch(trees.stdout, /eg-ab\./, "the temporary worktree was unregistered");
  assert.deepEqual(await running("eg-ab."), [], "the gateways and nginx were stopped");
});

Deno.test("scripts/bench_gc.sh: each load's rate and the scavenges' numbers, nothing left", async () => {
  const before = await workDirs("eg-gc.");
  for (const mode of [[], ["--close"], ["--h2"]]) {
    const r = await run("bash", [`${ROOT}scripts/bench_gc.sh`, ...mode, "1"], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    assert.match(
      out,
      mode.includes("--h2")
        ? /^load: h2load -c10 -m10 \(h2c\): \d+(\.\d+)? req\/s$/m
        : mode.includes("--close")
        ? /^load: wrk -c50 \(HTTP\/1\.1, Connection: close\): \d+\.\d+ req\/s, p99 \d+(\.\d+)?(us|ms|s)$/m
        : /^load: wrk -c50 \(HTTP\/1\.1\): \d+\.\d+ req\/s, p99 \d+(\.\d+)?(us|ms|s)$/m,
      out,
    );
    assert.match(
      out,
      /^scavenges [1-9]\d*: allocated \d+\.\d\d MB, survived \d+\.\d\d MB \(\d+\.\d %\), promoted \d+\.\d\d MB, pause mean \d+\.\d\d ms, max \d+\.\d\d ms$/m,
      out,
    );
    assert.match(out, /^full GCs \d+$/m, out);
  }
  assert.deepEqual(await workDirs("eg-gc."), before, "the work directory was removed");
  assert.deepEqual(await running("eg-gc."), [], "the gateway and nginx were stopped");
});
