/**
 * UDP packets per second through the LB namespace (bpf/tools/topology.ts), by path:
 *   xdp_native, xdp_native_gro, xdp_generic
 *                             the XDP program (src/xdp/cli.ts) on the lb veths; native needs
 *                             the endpoint veths to run xdp_pass.o, or (_gro) to have GRO on
 *   kernel_forward            plain kernel IP forwarding to a backend (no LB, a baseline)
 *   ts_relay                  bpf/tools/udp_relay.ts, the minimal Deno relay (userspace bound)
 * A C blaster (bpf/tools/udp_blaster.c, built into a temp dir) sends 64-byte datagrams from
 * 16 flows each (one blaster per core by default) for <seconds>; "delivered" counts what reached the backends' UDP layer
 * (/proc/net/snmp InDatagrams + RcvbufErrors deltas). Needs root. Prints one JSON line.
 *
 *   deno run -A bpf/tools/bench_udp.ts [seconds=5] [blasters=cores]
 *
 * Everything shares the machine's cores (blaster, softirq, relay): numbers are relative.
 */

import { ADDR, LineProc, must, sh, Topology } from "./topology.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SECONDS = Number(Deno.args[0] ?? 5);
const VIP_PORT = 7000;
const BE_PORT = 7001;
const BLASTERS = Number(Deno.args[1] ?? navigator.hardwareConcurrency);

async function main() {
  await must("bash", [`${ROOT}scripts/build-bpf.sh`]);
  const tmp = await Deno.makeTempDir({ prefix: "egx-bench-" });
  const blaster = `${tmp}/udp_blaster`;
  await must("clang", ["-O2", "-Wall", "-o", blaster, `${ROOT}bpf/tools/udp_blaster.c`]);
  const topo = await Topology.create("egx-b");
  const procs: LineProc[] = [];
  const results: Record<string, { sent_pps: number; delivered_pps: number }> = {};
  try {
    for (const ns of [topo.b1, topo.b2]) {
      const s = topo.spawn(`sink-${ns}`, ns, blaster, ["sink", String(BE_PORT), "3600"]);
      procs.push(s);
      await s.next();
    }
    const delivered = async () => {
      let n = 0;
      for (const ns of [topo.b1, topo.b2]) {
        const s = await topo.snmp(ns);
        n += s["Udp.InDatagrams"] + s["Udp.RcvbufErrors"];
      }
      return n;
    };
    const measure = async (name: string, target: string, port: number) => {
      const before = await delivered();
      // One blaster per core: on veth the whole receive path runs in the sender's softirq.
      const runs = await Promise.all(
        Array.from(
          { length: BLASTERS },
          () =>
            topo.exec(
              topo.client,
              blaster,
              ["send", target, String(port), String(SECONDS), "16", "64"],
              120_000,
            ),
        ),
      );
      await new Promise((res) => setTimeout(res, 300)); // let queues drain into the counters
      let sentPps = 0;
      let seconds = 0;
      for (const r of runs) {
        if (r.code !== 0) throw new Error(`blaster: ${r.stderr}`);
        const sent = JSON.parse(r.stdout);
        sentPps += sent.pps;
        seconds = Math.max(seconds, sent.seconds);
      }
      const got = (await delivered()) - before;
      results[name] = { sent_pps: Math.round(sentPps), delivered_pps: Math.round(got / seconds) };
      console.error(
        `${name}: sent ${results[name].sent_pps} pps, delivered ${results[name].delivered_pps} pps`,
      );
    };
    const xdp = async (mode: "native" | "generic", peers: "xdp_pass" | "gro" = "xdp_pass") => {
      await topo.setXdpPass(mode === "native" && peers === "xdp_pass");
      await topo.setGro(peers === "gro");
      const loader = topo.spawn("xdp", topo.lb, Deno.execPath(), [
        "run",
        "--allow-ffi",
        `${ROOT}src/xdp/cli.ts`,
        JSON.stringify({
          interfaces: ["l0", "l1", "l2"],
          mode,
          vip: ADDR.vip,
          port: VIP_PORT,
          protocol: "udp",
          backends: [{ address: ADDR.b1, port: BE_PORT }, { address: ADDR.b2, port: BE_PORT }],
        }),
      ]);
      try {
        const ready = await loader.next(30_000);
        if (ready.event !== "ready") throw new Error(JSON.stringify(ready));
        await measure(`xdp_${mode}${peers === "gro" ? "_gro" : ""}`, ADDR.vip, VIP_PORT);
      } finally {
        await loader.stop();
      }
    };
    await xdp("native");
    await xdp("native", "gro");
    await xdp("generic");
    await topo.setXdpPass(false);
    await topo.setGro(false);
    await measure("kernel_forward", ADDR.b1, BE_PORT);
    const relay = topo.spawn("relay", topo.lb, Deno.execPath(), [
      "run",
      "--allow-net",
      "--unstable-net",
      `${ROOT}bpf/tools/udp_relay.ts`,
      String(VIP_PORT),
      `${ADDR.b1}:${BE_PORT}`,
      `${ADDR.b2}:${BE_PORT}`,
    ]);
    procs.push(relay);
    await relay.next(30_000);
    await measure("ts_relay", ADDR.lbClientSide, VIP_PORT);
    console.log(
      JSON.stringify({
        seconds: SECONDS,
        size: 64,
        flows: 16,
        blasters: BLASTERS,
        cpus: navigator.hardwareConcurrency,
        results,
      }),
    );
  } finally {
    for (const p of procs) p.kill("SIGKILL");
    for (const p of procs) await p.done;
    await topo.destroy();
    await sh("rm", ["-rf", tmp]);
  }
}

await main();
