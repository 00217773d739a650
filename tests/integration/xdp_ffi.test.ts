/**
 * ffi/libbpf.ts in-process (root; nothing is attached to any interface): a program the
 * verifier rejects fails with the verifier's own log in the error, and map I/O on the real
 * bpf/xdp_lb.o round-trips the TS byte layouts — config, batch-written table, per-CPU
 * counters sized by the possible-CPU count, LRU flow entries.
 */

import assert from "node:assert/strict";
import { BpfError, Libbpf } from "../../ffi/libbpf.ts";
import {
  BACKEND,
  CONFIG,
  decodeBackend,
  encodeBackend,
  encodeConfig,
  encodeFlowKey,
  FLOW_KEY,
  perCpuSlot,
  STATS_SIZE,
  sumPerCpu,
  u32le,
} from "../../src/xdp/layout.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function sh(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (out.code !== 0) throw new Error(`${cmd}: ${new TextDecoder().decode(out.stderr)}`);
}

Deno.test("libbpf ffi: a verifier rejection carries the verifier log", async () => {
  const dir = await Deno.makeTempDir({ prefix: "egx-ffi-" });
  try {
    await Deno.writeTextFile(
      `${dir}/bad.c`,
      `#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("xdp") int bad_access(struct xdp_md *ctx) {
  unsigned char *d = (void *)(long)ctx->data;
  return d[100]; /* no bounds check against data_end */
}
char LICENSE[] SEC("license") = "GPL";
`,
    );
    await sh("clang", [
      "-O2",
      "-g",
      "-target",
      "bpf",
      "-I/usr/include/x86_64-linux-gnu",
      "-c",
      `${dir}/bad.c`,
      "-o",
      `${dir}/bad.o`,
    ]);
    const lib = Libbpf.open();
    const obj = lib.openObject(`${dir}/bad.o`);
    try {
      assert.throws(() => lib.loadObject(obj), (e: unknown) => {
        assert.ok(e instanceof BpfError);
        assert.match(e.message, /loading BPF object .*bad\.o/);
        assert.match(e.message, /invalid access to packet/, "the verifier's reason is in the message");
        assert.match(e.log, /BEGIN PROG LOAD LOG/);
        assert.ok(e.errno > 0);
        return true;
      });
    } finally {
      obj.close();
    }
    assert.throws(() => lib.openObject(`${dir}/missing.o`), /opening BPF object .*missing\.o: No such file/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("libbpf ffi: map I/O round-trips the TS layouts on bpf/xdp_lb.o", async () => {
  await sh("bash", [`${ROOT}scripts/build-bpf.sh`]);
  const lib = Libbpf.open();
  const obj = lib.openObject(`${ROOT}bpf/xdp_lb.o`);
  try {
    obj.setMaxEntries("eg_table", 2 * 257);
    obj.setMaxEntries("eg_flows", 1024);
    lib.loadObject(obj);

    const cfg = encodeConfig({
      vip: "10.9.8.7",
      port: 443,
      protocols: 3,
      active: 1,
      tableSize: [257, 251],
      backendCount: [2, 3],
      tableStride: 257,
      flowRate: 1000,
      flowBurst: 50,
    });
    lib.mapUpdate(obj.mapFd("eg_config"), u32le(0), cfg);
    const back = new Uint8Array(CONFIG.size);
    assert.ok(lib.mapLookup(obj.mapFd("eg_config"), u32le(0), back));
    assert.deepEqual(back, cfg);
    assert.deepEqual([...back.subarray(0, 6)], [10, 9, 8, 7, 1, 187], "VIP and port in network order");

    // Batch write of the whole table (both generations), read back at the edges.
    const n = 2 * 257;
    const keys = new Uint8Array(4 * n);
    const vals = new Uint8Array(4 * n);
    for (let i = 0; i < n; i++) {
      new DataView(keys.buffer).setUint32(4 * i, i, true);
      new DataView(vals.buffer).setUint32(4 * i, i % 7, true);
    }
    lib.mapUpdateBatch(obj.mapFd("eg_table"), keys, vals, n);
    const v = new Uint8Array(4);
    for (const i of [0, 256, 257, n - 1]) {
      assert.ok(lib.mapLookup(obj.mapFd("eg_table"), u32le(i), v));
      assert.equal(new DataView(v.buffer).getUint32(0, true), i % 7);
    }
    assert.throws(
      () => lib.mapUpdate(obj.mapFd("eg_table"), u32le(n), v),
      /bpf_map_update_elem.*E2BIG|errno 7/,
    );

    // Per-CPU counters: one 8-byte-aligned slot per possible CPU, all zero before any packet.
    const cpus = lib.numPossibleCpus();
    assert.ok(cpus >= 1);
    const slot = perCpuSlot(STATS_SIZE);
    const stats = new Uint8Array(slot * cpus);
    assert.ok(lib.mapLookup(obj.mapFd("eg_stats"), u32le(0), stats));
    assert.equal(sumPerCpu(stats, cpus, slot, 0), 0);

    // LRU flow entry: write, find, iterate, delete.
    const fk = encodeFlowKey({ src: "10.0.0.1", dst: "10.9.8.7", sport: 5555, dport: 443, proto: 6 });
    lib.mapUpdate(obj.mapFd("eg_flows"), fk, encodeBackend("10.0.0.9", 8443));
    const got = new Uint8Array(BACKEND.size);
    assert.ok(lib.mapLookup(obj.mapFd("eg_flows"), fk, got));
    assert.deepEqual(decodeBackend(got), { address: "10.0.0.9", port: 8443 });
    const next = new Uint8Array(FLOW_KEY.size);
    assert.ok(lib.mapNextKey(obj.mapFd("eg_flows"), null, next));
    assert.deepEqual(next, fk);
    assert.equal(lib.mapNextKey(obj.mapFd("eg_flows"), fk, next), false);
    assert.ok(lib.mapDelete(obj.mapFd("eg_flows"), fk));
    assert.equal(lib.mapLookup(obj.mapFd("eg_flows"), fk, got), false);
    assert.equal(lib.mapDelete(obj.mapFd("eg_flows"), fk), false);
  } finally {
    obj.close();
  }
});
