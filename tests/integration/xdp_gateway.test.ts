/**
 * The XDP fast path driven by the gateway itself (runtime.xdp_enabled + [xdp]), as root, in
 * the namespace topology of bpf/tools/topology.ts: the gateway runs in the lb namespace under
 * its product flags (with --allow-ffi because XDP is on), fills the Maglev table from the pool,
 * rewrites it on SIGHUP, exports the XDP metric families, and detaches on SIGTERM.
 */
import assert from "node:assert/strict";
import { ADDR, sh, Topology } from "../../bpf/tools/topology.ts";
import { gatewayFlags } from "../../scripts/flags.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const PEER = `${ROOT}bpf/tools/xdp_peer.mjs`;

function config(backends: string[]): string {
  return `
[runtime]
xdp_enabled = true
workers = 1

[observability]
admin_bind = "127.0.0.1:9391"

[xdp]
interfaces = ["l0", "l1", "l2"]
mode = "generic"
vip = "${ADDR.vip}"
port = 7000
protocol = "tcp+udp"
pool = "fast"

[[listeners]]
name = "local"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  respond = { status = 200, body = "ok" }

[[pools]]
name = "fast"
${backends.map((b) => `  [[pools.backends]]\n  address = "${b}:7001"`).join("\n")}
`;
}

async function curlVip(topo: Topology): Promise<string> {
  const r = await sh("ip", [
    "netns",
    "exec",
    topo.client,
    "curl",
    "-s",
    "--max-time",
    "3",
    `http://${ADDR.vip}:7000/`,
  ]);
  return r.stdout.trim();
}

Deno.test("gateway with xdp_enabled: fast path attached, reloaded in place, detached on SIGTERM", async () => {
  const topo = await Topology.create("egx-g");
  const dir = await Deno.makeTempDir({ prefix: "eg-xdp-" });
  const peers: Deno.ChildProcess[] = [];
  let gw: Deno.ChildProcess | undefined;
  try {
    for (const [ns, name] of [[topo.b1, "b1"], [topo.b2, "b2"]]) {
      peers.push(
        new Deno.Command("ip", {
          args: ["netns", "exec", ns, "node", PEER, "server", name, "7001"],
          stdin: "piped",
          stdout: "null",
          stderr: "null",
        }).spawn(),
      );
    }
    const cfgPath = `${dir}/gateway.toml`;
    await Deno.writeTextFile(cfgPath, config([ADDR.b1, ADDR.b2]));
    const flags = gatewayFlags(cfgPath);
    assert.ok(flags.includes("--allow-ffi"), "XDP on: the flags include --allow-ffi");
    gw = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        topo.lb,
        Deno.execPath(),
        "run",
        "--no-prompt",
        ...flags,
        `${ROOT}main.ts`,
        cfgPath,
      ],
      env: { LB_LOG_FORMAT: "json", DENO_NO_PACKAGE_JSON: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let logs = "";
    const pump = (async () => {
      for await (const c of gw!.stderr.pipeThrough(new TextDecoderStream())) logs += c;
    })();
    gw.stdout.cancel();
    const deadline = Date.now() + 20_000;
    while (!logs.includes('"msg":"gateway ready"')) {
      if (Date.now() > deadline) throw new Error(`gateway not ready:\n${logs}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(logs, /XDP fast path attached/);
    assert.match(await topo.lbLinks(), /xdp/, "a program is attached in the lb namespace");

    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) seen.add((await curlVip(topo)).split(" ")[0]);
    assert.ok(
      [...seen].every((s) => s === "b1" || s === "b2") && seen.size >= 1,
      `answers via the VIP: ${[...seen]}`,
    );

    const metrics = await sh("ip", ["netns", "exec", topo.lb, "curl", "-s", "http://127.0.0.1:9391/metrics"]);
    assert.match(metrics.stdout, /^expressgateway_xdp_\w+/m, "XDP families exported on /metrics");

    // SIGHUP: the pool shrinks to b1; new flows all land there, without detaching.
    await Deno.writeTextFile(cfgPath, config([ADDR.b1]));
    gw.kill("SIGHUP");
    const until = Date.now() + 10_000;
    while (!logs.includes('"msg":"config reloaded"') && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < 8; i++) assert.equal((await curlVip(topo)).split(" ")[0], "b1");
    assert.match(await topo.lbLinks(), /xdp/, "still attached after the reload");

    gw.kill("SIGTERM");
    assert.equal((await gw.status).code, 0);
    await pump;
    gw = undefined;
    assert.doesNotMatch(await topo.lbLinks(), /xdp/, "detached after SIGTERM");
  } finally {
    if (gw) {
      try {
        gw.kill("SIGKILL");
      } catch { /* exited */ }
      await gw.status;
    }
    for (const p of peers) {
      try {
        p.kill("SIGTERM");
      } catch { /* exited */ }
      await p.status;
    }
    await topo.destroy();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
