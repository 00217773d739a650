/**
 * The benchmark harness cannot rot: `scripts/bench --smoke` (one 1 s round per cell, small
 * memory rows) runs the real gateway, nginx, HAProxy, Caddy and nghttpx in front of the nginx
 * origin (and the node gRPC and WebSocket origins) and writes its tables to a temp file. Checks
 * the tables have a numeric req/s row for every proxy with same-run ratios; the HTTP/2 tables
 * have nghttpx; the HTTP/3 tables (h3load, the HTTP/3 download) have gateway and Caddy numbers
 * and an explicit n/a for nginx and HAProxy; the workers section has 1- and 2-worker numbers
 * and a scaling ratio per proxy; gRPC and WebSocket rows exist; docs/benchmarks.md was not
 * touched; and every process the harness started is gone afterwards (by pid and start time,
 * from the pid file it keeps), with nothing left for the wrapper's safety net to kill. No
 * timing is asserted.
 */

import assert from "node:assert/strict";
import { assertAllGone, docsUntouched, num, runBench, tableAfter } from "../helpers/bench_smoke.ts";

const PROXIES = ["gateway", "nginx", "haproxy", "caddy"];
const H2_PROXIES = [...PROXIES, "nghttpx"];
// About 50 s on an idle 2-core machine; the margin is for a busy one.
const LIMIT_MS = 115_000;

Deno.test("scripts/bench --smoke writes same-run tables and leaves nothing running", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-bench-smoke-" });
  const out = `${dir}/benchmarks.md`;
  const pidfile = `${dir}/pids`;
  const docsCheck = await docsUntouched();
  try {
    const md = await runBench(["--smoke"], out, pidfile, LIMIT_MS);
    assert.match(md, /<!-- bench:begin/);
    assert.match(md, /<!-- bench:end -->/);
    assert.match(md, /Command: `scripts\/bench --smoke --out /);
    assert.match(md, /Machine: \d+ × /);

    // The HTTP/1.1 keep-alive table: every proxy ran, with a positive numeric req/s.
    const rows = tableAfter(md, "HTTP/1.1 small response, keep-alive");
    assert.deepEqual(rows.map((r) => r[0]), PROXIES);
    for (const r of rows) {
      assert.ok(num(r[1]) > 0, `${r[0]}: req/s '${r[1]}' is not a positive number`);
      assert.ok(num(r[3]) > 0, `${r[0]}: p99 '${r[3]}' is not a positive number`);
      assert.ok(num(r[4]) > 0, `${r[0]}: CPU µs/req '${r[4]}' is not a positive number`);
    }
    // The other scenarios have a row per proxy: numbers, or an explicit n/a with a reason.
    const numOrNa = (title: string, r: string[]) =>
      assert.ok(num(r[1]) > 0 || /^n\/a: \S/.test(r[1]), `${title}: ${r.join(" | ")}`);
    for (
      const [title, rows] of [
        ["HTTP/1.1 1 MiB response", PROXIES],
        ["HTTP/1.1 POST 1 MiB", PROXIES],
        ["HTTP/2 (h2c, prior knowledge) small response", H2_PROXIES],
        ["gRPC unary call", H2_PROXIES],
        ["WebSocket echo", PROXIES],
      ] as const
    ) {
      const t = tableAfter(md, title);
      assert.deepEqual(t.map((r) => r[0]), rows, title);
      for (const r of t) numOrNa(title, r);
    }
    // nghttpx is a real HTTP/2 peer, not a placeholder row.
    const nghttpx = tableAfter(md, "HTTP/2 (h2c, prior knowledge) small response").find((r) =>
      r[0] === "nghttpx"
    )!;
    assert.ok(num(nghttpx[1]) > 0, `nghttpx h2c: ${nghttpx.join(" | ")}`);

    // HTTP/3 through h3load: gateway and Caddy measured (both have a QUIC front), nginx and
    // HAProxy present with the reason they cannot be, and a same-run gateway/caddy ratio.
    for (const title of ["HTTP/3 small response", "HTTP/3 download"]) {
      const t = tableAfter(md, title);
      assert.deepEqual(t.map((r) => r[0]), PROXIES, title);
      for (const r of t) {
        if (r[0] === "gateway" || r[0] === "caddy") assert.ok(num(r[1]) > 0, `${title}: ${r.join(" | ")}`);
        else assert.match(r[1], /^n\/a: no HTTP\/3 front/, `${title}: ${r.join(" | ")}`);
      }
      const ratio = tableAfter(md, title, "| ratio |").find((r) => r[0] === "gateway/caddy");
      assert.ok(ratio && num(ratio[1]) > 0, `${title}: no numeric gateway/caddy ratio`);
    }

    // Workers: 1- and 2-worker cells for gateway, nginx and HAProxy, and a scaling ratio each.
    const workersTitle = "Workers: HTTP/1.1 small response with 1 and 2 workers";
    for (const n of [1, 2]) {
      const t = tableAfter(md, workersTitle, "| proxy |", `${n} worker${n > 1 ? "s" : ""}:`);
      assert.deepEqual(t.map((r) => r[0]), ["gateway", "nginx", "haproxy"].map((p) => `${p}×${n}`));
      for (const r of t) assert.ok(num(r[1]) > 0, `${workersTitle}: ${r.join(" | ")}`);
    }
    const scaling = tableAfter(md, workersTitle, "| proxy | 1 worker req/s |");
    assert.deepEqual(scaling.map((r) => r[0]), ["gateway", "nginx", "haproxy"]);
    for (const r of scaling) assert.ok(num(r[3]) > 0, `scaling: ${r.join(" | ")}`);
    assert.match(md, /Pinning: load generator on CPU \S+; 1 worker: proxy on .+; 2 workers: proxy on /);
    // Ratios against each peer from the same run.
    for (const peer of ["nginx", "haproxy", "caddy"]) {
      const m = md.match(new RegExp(`\\| gateway/${peer} \\| ([0-9.]+) \\|`));
      assert.ok(m && Number(m[1]) > 0, `no numeric gateway/${peer} req/s ratio`);
    }
    assert.match(md, /#### Memory/);
    assert.match(
      md,
      /\| RSS idle, right after start \(MiB\) \| [0-9.,]+ \| [0-9.,]+ \| [0-9.,]+ \| [0-9.,]+ \|/,
    );

    // Nothing the harness started is still running.
    await assertAllGone(pidfile, [
      "origin",
      "gateway",
      "nginx",
      "haproxy",
      "caddy",
      "nghttpx",
      "wrk",
      "grpc-origin",
      "ws-origin",
    ]);

    // The real docs were not touched.
    await docsCheck();
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
