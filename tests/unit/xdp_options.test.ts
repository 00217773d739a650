/**
 * XDP options (src/xdp/options.ts) and byte encoders, without FFI or root; plus the rule that
 * only a dynamic import may reach src/xdp or ffi/, so a gateway with XDP off never loads FFI.
 */

import assert from "node:assert/strict";
import { maglevTable } from "../../src/balancer/maglev.ts";
import { encodeBackend, encodeConfig, encodeFlowKey, flowHash, ipv4Bytes } from "../../src/xdp/layout.ts";
import {
  DEFAULT_FLOW_TABLE_SIZE,
  DEFAULT_XDP_TABLE_SIZE,
  resolveXdpOptions,
  restartOnlyChanges,
  XdpConfigError,
  type XdpOptions,
} from "../../src/xdp/options.ts";

const BASE: XdpOptions = {
  interfaces: ["eth0"],
  mode: "native",
  vip: "192.0.2.10",
  port: 443,
  protocol: "tcp",
  backends: [{ address: "10.0.0.1" }, { address: "10.0.0.2", port: 8443, weight: 3 }],
};

Deno.test("xdp options: defaults", () => {
  const o = resolveXdpOptions(BASE);
  assert.equal(o.tableSize, DEFAULT_XDP_TABLE_SIZE);
  assert.equal(o.flowTableSize, DEFAULT_FLOW_TABLE_SIZE);
  assert.equal(o.newFlowsPerSecond, 0);
  assert.equal(o.newFlowsBurst, 1);
  assert.equal(o.fallbackToGeneric, false);
  assert.equal(o.libbpfPath, "libbpf.so.1");
  assert.match(o.objectPath, /\/bpf\/xdp_lb\.o$/);
  assert.deepEqual(o.backends, [
    { address: "10.0.0.1", port: 443, weight: 1, key: "10.0.0.1:443" },
    { address: "10.0.0.2", port: 8443, weight: 3, key: "10.0.0.2:8443" },
  ]);
  assert.equal(resolveXdpOptions({ ...BASE, newFlowsPerSecond: 500 }).newFlowsBurst, 500);
});

Deno.test("xdp options: every problem is reported, each naming its option", () => {
  const bad = {
    interfaces: ["eth0", "way-too-long-interface-name"],
    mode: "offload",
    vip: "300.1.1.1",
    port: 0,
    protocol: "sctp",
    backends: [{ address: "10.0.0.1" }, { address: "10.0.0.1" }, { address: "::1" }, {
      address: "10.0.0.3",
      weight: 0,
    }],
    tableSize: 65536,
    newFlowsPerSecond: -1,
    flowTableSize: 10,
  } as unknown as XdpOptions;
  assert.throws(() => resolveXdpOptions(bad), (e: unknown) => {
    assert.ok(e instanceof XdpConfigError);
    const text = e.problems.join("\n");
    for (
      const want of [
        /interfaces: "way-too-long-interface-name"/,
        /mode must be "native" or "generic"/,
        /vip must be a non-zero IPv4/,
        /port must be 1\.\.65535/,
        /protocol must be/,
        /backends\[1\]: duplicate backend 10\.0\.0\.1/,
        /backends\[2\]\.address/,
        /backends\[3\]\.weight/,
        /table_size must be a prime/,
        /new_flows_per_second/,
        /flow_table_size/,
      ]
    ) assert.match(text, want);
    return true;
  });
  assert.throws(() => resolveXdpOptions({ ...BASE, interfaces: [] }), /at least one interface/);
  const four = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"].map((address) => ({ address }));
  assert.throws(
    () => resolveXdpOptions({ ...BASE, tableSize: 3, backends: four }),
    /backends: 4 exceed table_size 3/,
  );
});

Deno.test("xdp options: a reload may change backends and rates, not the attachment", () => {
  const live = resolveXdpOptions(BASE);
  assert.deepEqual(
    restartOnlyChanges(
      live,
      resolveXdpOptions({ ...BASE, backends: [{ address: "10.0.0.9" }], newFlowsPerSecond: 9 }),
    ),
    [],
  );
  assert.deepEqual(
    restartOnlyChanges(live, resolveXdpOptions({ ...BASE, mode: "generic", port: 444, tableSize: 251 })),
    ["mode", "port", "table_size"],
  );
});

Deno.test("xdp layout: network byte order and the flow hash", () => {
  assert.deepEqual([...ipv4Bytes("192.0.2.10")], [192, 0, 2, 10]);
  assert.throws(() => ipv4Bytes("1.2.3"), /not an IPv4/);
  assert.throws(() => ipv4Bytes("01.2.3.4"), /not an IPv4/);
  assert.deepEqual([...encodeBackend("10.0.0.2", 8443)], [10, 0, 0, 2, 0x20, 0xfb, 0, 0]);
  const k = encodeFlowKey({ src: "1.2.3.4", dst: "5.6.7.8", sport: 0x1234, dport: 80, proto: 17 });
  assert.deepEqual([...k], [1, 2, 3, 4, 5, 6, 7, 8, 0x12, 0x34, 0, 80, 17, 0, 0, 0]);
  const c = encodeConfig({
    vip: "192.0.2.10",
    port: 443,
    protocols: 3,
    active: 1,
    tableSize: [7, 11],
    backendCount: [2, 3],
    tableStride: 11,
    flowRate: 5,
    flowBurst: 6,
  });
  assert.deepEqual([...c.subarray(0, 12)], [192, 0, 2, 10, 1, 187, 3, 1, 7, 0, 0, 0]);
  // The hash spreads source ports over a two-backend table roughly evenly.
  const table = maglevTable(["a:1", "b:1"], [1, 1], 65537);
  const hits = [0, 0];
  for (let p = 1024; p < 5024; p++) {
    hits[table[flowHash({ src: "10.0.0.1", dst: "10.0.0.2", sport: p, dport: 80, proto: 6 }) % 65537]]++;
  }
  assert.ok(hits[0] > 1700 && hits[1] > 1700, `uneven spread ${hits}`);
});

Deno.test("xdp: only dynamic imports reach src/xdp and ffi/ (libbpf is never opened unless XDP is on)", async () => {
  const root = new URL("../../", import.meta.url).pathname;
  const offenders: string[] = [];
  const scan = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) {
        if (path !== `${root}src/xdp`) await scan(path);
      } else if (e.name.endsWith(".ts")) {
        const text = await Deno.readTextFile(path);
        for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+["']([^"']+)["']/gm)) {
          if (/(^|\/)(xdp|ffi)\//.test(m[1])) offenders.push(`${path.slice(root.length)} → ${m[1]}`);
        }
      }
    }
  };
  await scan(`${root}src`);
  const main = await Deno.readTextFile(`${root}main.ts`);
  for (const m of main.matchAll(/^\s*(?:import|export)\b[^;]*?from\s+["']([^"']+)["']/gm)) {
    if (/(^|\/)(xdp|ffi)\//.test(m[1])) offenders.push(`main.ts → ${m[1]}`);
  }
  assert.deepEqual(offenders, [], "use `await import(...)` when runtime.xdp_enabled is true");
});
