/**
 * The L4 and QUIC benchmark cannot rot: `scripts/bench --l4 --smoke` (one short round, small
 * sizes) runs the gateway's tcp listener against nginx stream and HAProxy mode tcp, its udp
 * listener and XDP fast path against nginx udp (in namespaces, as root), and QUIC Mode A and B
 * against a direct download, and writes its section to a temp file. Checks every row produced
 * a number (the UDP rows only as root, which CI is), that docs/benchmarks.md was not touched,
 * that every process it started is gone (by pid and start time, from the pid file) with nothing
 * left for the wrapper's safety net, and that no namespace it created is left. No timing is
 * asserted.
 */

import assert from "node:assert/strict";
import {
  assertAllGone,
  docsUntouched,
  num,
  runBench,
  startTime,
  tableAfter,
} from "../helpers/bench_smoke.ts";

const LIMIT_MS = 85_000;

/** The row whose first cell starts with `label`; asserts column `col` is a positive number. */
function positive(rows: string[][], label: string, col: number, what: string): void {
  const row = rows.find((r) => r[0].startsWith(label));
  assert.ok(row, `no row '${label}' in ${JSON.stringify(rows.map((r) => r[0]))}`);
  assert.ok(num(row[col]) > 0, `${label}: ${what} '${row[col]}' is not a positive number`);
}

function namespaces(): string[] {
  const out = new Deno.Command("ip", { args: ["netns", "list"], stdout: "piped", stderr: "null" })
    .outputSync();
  return new TextDecoder().decode(out.stdout).split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
}

Deno.test("scripts/bench --l4 --smoke: a number in every row, nothing left running", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-bench-l4-smoke-" });
  const out = `${dir}/benchmarks.md`;
  const pidfile = `${dir}/pids`;
  const docsCheck = await docsUntouched();
  const root = Deno.uid() === 0;
  try {
    // SIGTERM reaches the script through the wrapper; it stops everything and deletes its namespaces.
    const md = await runBench(["--l4", "--smoke"], out, pidfile, LIMIT_MS);
    assert.match(md, /<!-- bench-l4:begin/);
    assert.match(md, /<!-- bench-l4:end -->/);
    assert.match(md, /Command: `scripts\/bench --l4 --smoke --out /);
    assert.match(md, /Pinning \(taskset\): /);

    // TCP: every relay and the no-relay baseline, both cells.
    const bulk = tableAfter(md, "TCP relay: bulk download", "| ");
    const conns = tableAfter(md, "TCP relay: short connections", "| ");
    for (const label of ["gateway", "nginx", "HAProxy", "no relay"]) {
      positive(bulk, label, 1, "MiB/s");
      positive(conns, label, 1, "connections/s");
    }
    for (const label of ["gateway", "nginx", "HAProxy"]) {
      positive(bulk, label, 2, "CPU µs/MiB");
      positive(conns, label, 3, "CPU µs/conn");
    }
    const tcpRatios = md.slice(md.indexOf("#### TCP relay: short connections"));
    for (const peer of ["nginx", "haproxy"]) {
      const m = tcpRatios.match(new RegExp(`\\| gateway/${peer} \\| ([0-9.]+) \\|`));
      assert.ok(m && Number(m[1]) > 0, `no numeric gateway/${peer} ratio`);
    }

    // UDP: userspace gateway, nginx, both XDP modes, kernel forwarding, and the ratio.
    const udpTitle = "UDP: 64-byte datagrams through the LB namespace";
    if (root) {
      const udp = tableAfter(md, udpTitle, "| ");
      for (
        const label of [
          "gateway userspace",
          "nginx",
          "gateway XDP fast path, generic",
          "gateway XDP fast path, native",
          "kernel forwarding",
        ]
      ) positive(udp, label, 2, "delivered pps");
      positive(udp, "gateway userspace", 4, "proxy CPU µs/pkt");
      const m = md.match(/\| XDP generic \/ gateway userspace \| ([0-9.]+) \|/);
      assert.ok(m && Number(m[1]) > 0, "no numeric XDP / userspace ratio");
      assert.match(md, /rewrote towards the backends[^\n]*xdp generic \d+ %/);
    } else {
      assert.match(md, /n\/a: needs root/);
    }

    // QUIC: direct, Mode A, Mode B; Mode A's packet rate from the gateway's counters.
    const quic = tableAfter(md, "QUIC: one download with gtlsclient from gtlsserver", "| ");
    for (const label of ["direct", "Mode A", "Mode B"]) positive(quic, label, 1, "MiB/s");
    positive(quic, "Mode A", 2, "gateway CPU µs/MiB");
    positive(quic, "Mode A", 3, "datagrams/s relayed");
    if (root) positive(quic, "Mode A", 4, "datagrams/s per hop (snmp)");
    const q = md.match(/\| Mode A \/ direct \| ([0-9.]+) \|/);
    assert.ok(q && Number(q[1]) > 0, "no numeric Mode A / direct ratio");

    // Nothing it started is still running; no namespace of its is left.
    const names = await assertAllGone(pidfile, [
      "origin",
      "gateway-tcp",
      "nginx-tcp",
      "haproxy-tcp",
      "gtlsserver",
      "gateway-quic",
    ]);
    if (root) {
      for (const n of ["gateway-udp", "nginx-udp", "gateway-xdp-generic", "gateway-xdp-native"]) {
        assert.ok(names.has(n), `pid file lists no ${n}`);
      }
    }
    if (root) {
      const left = namespaces().filter((n) => {
        const m = /^egb[lq](\d+)-/.exec(n);
        return m !== null && startTime(Number(m[1])) === undefined;
      });
      assert.deepEqual(left, [], "namespaces left behind");
    }

    // The real docs were not touched.
    await docsCheck();
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
