/**
 * The XDP fast path end to end, as root, in network namespaces this test creates and deletes
 * (bpf/tools/topology.ts): client — lb — backend1/backend2. The controller runs inside the lb
 * namespace through src/xdp/cli.ts (`deno run --allow-ffi`); node peers (bpf/tools/xdp_peer.mjs)
 * serve HTTP + UDP echo on the backends and drive UDP flows and a long-lived TCP connection
 * from the client; curl makes the short TCP requests.
 *
 * Each mode (generic, native) checks: TCP and UDP through the VIP land on the backend the TS
 * Maglev table + flow hash predict; replies come from the VIP; per-backend kernel counters
 * match what the backends saw; no checksum errors anywhere (/proc/net/snmp); a backend swap
 * keeps an established TCP connection on its backend; non-VIP traffic still passes; metrics
 * mirror the counters; and detaching (cleanly, or by SIGKILL of the loader) leaves no xdp.
 */

import assert from "node:assert/strict";
import { ADDR, type LineProc, sh, Topology } from "../../bpf/tools/topology.ts";
import { maglevTable } from "../../src/balancer/maglev.ts";
import { flowHash, type FlowTuple, IPPROTO_TCP, IPPROTO_UDP } from "../../src/xdp/layout.ts";
import type { XdpBackend, XdpOptions } from "../../src/xdp/options.ts";

const PREFIX = "egx-t";
const ROOT = new URL("../../", import.meta.url).pathname;
const CLI = `${ROOT}src/xdp/cli.ts`;
const PEER = `${ROOT}bpf/tools/xdp_peer.mjs`;
const VIP = ADDR.vip;
const VIP_PORT = 7000;
const BE_PORT = 7001;
const B1: XdpBackend = { address: ADDR.b1, port: BE_PORT };
const B2: XdpBackend = { address: ADDR.b2, port: BE_PORT };
const NAME: Record<string, "b1" | "b2"> = {
  [`${ADDR.b1}:${BE_PORT}`]: "b1",
  [`${ADDR.b2}:${BE_PORT}`]: "b2",
};
const KEY = { b1: `${ADDR.b1}:${BE_PORT}`, b2: `${ADDR.b2}:${BE_PORT}` };

function options(mode: "native" | "generic", tableSize: number, extra: Partial<XdpOptions> = {}): XdpOptions {
  return {
    interfaces: ["l0", "l1", "l2"],
    mode,
    vip: VIP,
    port: VIP_PORT,
    protocol: "tcp+udp",
    backends: [B1, B2],
    tableSize,
    ...extra,
  };
}

/** Which backend the program must pick for a new flow: the TS table + the C flow hash. */
function predict(backends: XdpBackend[], tableSize: number, t: FlowTuple): "b1" | "b2" {
  const keys = backends.map((b) => `${b.address}:${b.port}`);
  const table = maglevTable(keys, keys.map(() => 1), tableSize);
  return NAME[keys[table[flowHash(t) % tableSize]]];
}

const tcpTuple = (sport: number): FlowTuple => ({
  src: ADDR.client,
  dst: VIP,
  sport,
  dport: VIP_PORT,
  proto: IPPROTO_TCP,
});
const udpTuple = (sport: number): FlowTuple => ({ ...tcpTuple(sport), proto: IPPROTO_UDP });

function startLoader(topo: Topology, opts: XdpOptions, args: string[] = []): LineProc {
  return topo.spawn("xdp-cli", topo.lb, Deno.execPath(), [
    "run",
    "--no-prompt",
    "--allow-ffi",
    ...args,
    CLI,
    JSON.stringify(opts),
  ]);
}

async function curl(topo: Topology, localPort: number, host: string = VIP, port = VIP_PORT): Promise<string> {
  const r = await topo.exec(topo.client, "curl", [
    "-sS",
    "-m",
    "5",
    "--local-port",
    String(localPort),
    `http://${host}:${port}/`,
  ], 10_000);
  assert.equal(r.code, 0, `curl via ${host}:${port} from port ${localPort} failed: ${r.stderr}`);
  return r.stdout.trim();
}

/** Polls `ip -d link show` in the lb namespace until no xdp program is attached (≤ 3 s). */
async function assertNoXdp(topo: Topology): Promise<void> {
  let links = "";
  for (let i = 0; i < 30; i++) {
    links = await topo.lbLinks();
    if (!/\bxdp/.test(links)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`an XDP program is still attached in ${topo.lb}:\n${links}`);
}

async function assertNoChecksumErrors(topo: Topology): Promise<void> {
  for (const ns of [topo.client, topo.b1, topo.b2]) {
    const s = await topo.snmp(ns);
    for (const k of ["Tcp.InCsumErrors", "Tcp.InErrs", "Udp.InCsumErrors", "Udp.InErrors"]) {
      assert.equal(s[k], 0, `${ns}: ${k} = ${s[k]}`);
    }
  }
}

interface Peers {
  b1: LineProc;
  b2: LineProc;
  client: LineProc;
}

// deno-lint-ignore no-explicit-any
type Stats = { global: Record<string, number>; backends: any[] };
function backendStats(s: Stats, name: "b1" | "b2") {
  const b = s.backends.find((x) => x.key === KEY[name]);
  assert.ok(b, `no counters for ${name} in ${JSON.stringify(s.backends)}`);
  return b;
}

async function exercise(
  topo: Topology,
  peers: Peers,
  mode: "native" | "generic",
  tableSize: number,
  portBase: number,
) {
  await topo.setXdpPass(mode === "native");
  const loader = startLoader(topo, options(mode, tableSize));
  let exited = false;
  try {
    const ready = await loader.next(30_000);
    assert.equal(ready.event, "ready", JSON.stringify(ready));
    assert.deepEqual(
      // deno-lint-ignore no-explicit-any
      ready.attachments.map((a: any) => `${a.interface}:${a.mode}`),
      [`l0:${mode}`, `l1:${mode}`, `l2:${mode}`],
    );
    const links = await topo.lbLinks();
    assert.match(links, mode === "native" ? /mtu \d+ xdp / : /mtu \d+ xdpgeneric /, links);

    const stats = async (): Promise<Stats> => (await loader.request({ cmd: "stats" })).stats;
    const served = async () => ({
      b1: await peers.b1.request({ op: "stats" }),
      b2: await peers.b2.request({ op: "stats" }),
    });

    // ---- UDP: every flow on its predicted backend, every reply from the VIP, counters exact.
    const s0 = await stats();
    const v0 = await served();
    const udp = await peers.client.request(
      { op: "udp", target: VIP, port: VIP_PORT, flows: 12, perFlow: 4, timeoutMs: 4000 },
      20_000,
    );
    assert.equal(udp.received, udp.sent, `UDP replies lost: ${JSON.stringify(udp)}`);
    const flowsTo = { b1: 0, b2: 0 };
    for (const f of udp.flows) {
      assert.deepEqual(f.from, [`${VIP}:${VIP_PORT}`], "UDP replies must come from the VIP");
      const want = predict([B1, B2], tableSize, udpTuple(f.localPort));
      assert.deepEqual(f.backends, [want], `UDP flow from port ${f.localPort}`);
      flowsTo[want]++;
    }
    assert.ok(
      flowsTo.b1 > 0 && flowsTo.b2 > 0,
      `12 flows should reach both backends: ${JSON.stringify(flowsTo)}`,
    );
    const s1 = await stats();
    const v1 = await served();
    for (const name of ["b1", "b2"] as const) {
      const seen = v1[name].datagrams - v0[name].datagrams;
      assert.equal(seen, flowsTo[name] * 4, `${name} datagrams`);
      const k0 = backendStats(s0, name), k1 = backendStats(s1, name);
      assert.equal(k1.packets - k0.packets, seen, `${name}: kernel to_backend packets vs datagrams seen`);
      assert.equal(k1.replyPackets - k0.replyPackets, seen, `${name}: kernel reply packets vs echoes sent`);
      assert.equal(k1.newFlows - k0.newFlows, flowsTo[name], `${name}: new flows`);
    }
    assert.equal(s1.global.NEW_FLOWS - s0.global.NEW_FLOWS, 12);
    assert.equal(s1.global.VIP_PACKETS - s0.global.VIP_PACKETS, 48);

    // ---- TCP through curl: predicted backend, connections counted per backend.
    const t0 = await stats();
    const c0 = await served();
    const conns = { b1: 0, b2: 0 };
    for (let i = 0; i < 8; i++) {
      const port = portBase + i;
      const body = await curl(topo, port);
      const want = predict([B1, B2], tableSize, tcpTuple(port));
      assert.equal(body.split(" ")[0], want, `TCP from port ${port}: ${body}`);
      conns[want]++;
    }
    const t1 = await stats();
    const c1 = await served();
    for (const name of ["b1", "b2"] as const) {
      assert.equal(c1[name].connections - c0[name].connections, conns[name], `${name} TCP connections`);
      assert.equal(
        backendStats(t1, name).newFlows - backendStats(t0, name).newFlows,
        conns[name],
        `${name}: kernel new flows vs TCP connections accepted`,
      );
    }

    // ---- Backend swap keeps an established connection on its backend.
    const open = await peers.client.request({ op: "open", target: VIP, port: VIP_PORT });
    assert.ok(open.localPort, JSON.stringify(open));
    const first = (await peers.client.request({ op: "req" })).body as string;
    const [pinned, connId] = first.split(" ");
    assert.equal(pinned, predict([B1, B2], tableSize, tcpTuple(open.localPort)));
    const other = pinned === "b1" ? B2 : B1;
    assert.deepEqual(await loader.request({ cmd: "backends", backends: [other] }), { ok: true });
    for (let i = 0; i < 3; i++) {
      const body = await curl(topo, portBase + 10 + i);
      assert.equal(body.split(" ")[0], NAME[`${other.address}:${other.port}`], "new flows use the new table");
    }
    const again = (await peers.client.request({ op: "req" })).body;
    assert.equal(
      again,
      `${pinned} ${connId}`,
      "the established connection stays on its backend, same connection",
    );
    const pin = await loader.request({ cmd: "pinned", tuple: tcpTuple(open.localPort) });
    assert.equal(NAME[`${pin.backend.address}:${pin.backend.port}`], pinned);
    assert.deepEqual(await loader.request({ cmd: "backends", backends: [B1, B2] }), { ok: true });
    assert.equal((await peers.client.request({ op: "req" })).body, `${pinned} ${connId}`);
    await peers.client.request({ op: "closeconn" });

    // ---- Non-VIP traffic passes to the kernel untouched (routed by the lb as usual).
    const p0 = await stats();
    assert.match(await curl(topo, portBase + 20, ADDR.b2, BE_PORT), /^b2 /);
    const p1 = await stats();
    assert.ok(p1.global.PASS_NOT_OURS > p0.global.PASS_NOT_OURS, "direct traffic counted as not ours");
    assert.equal(p1.global.NEW_FLOWS, p0.global.NEW_FLOWS, "direct traffic creates no XDP flow");

    // ---- Forwarding really happened in XDP, and metrics mirror the kernel counters.
    const end = await stats();
    assert.ok(end.global.FWD_REDIRECT > 0, `no XDP redirects: ${JSON.stringify(end.global)}`);
    assert.equal(end.global.DROP_NO_BACKEND, 0);
    const text: string = (await loader.request({ cmd: "metrics" })).text;
    const after = await stats();
    for (const name of ["b1", "b2"] as const) {
      const line = `expressgateway_xdp_backend_new_flows_total{backend="${KEY[name]}"} ${
        backendStats(after, name).newFlows
      }`;
      assert.ok(text.includes(line), `metrics lack '${line}'`);
    }
    assert.ok(text.includes(`expressgateway_xdp_attached{interface="l0",mode="${mode}"} 1`));
    assert.match(text, /^expressgateway_xdp_drops_total\{reason="rate_limited"\} \d+$/m);
    assert.match(text, /^expressgateway_xdp_packets_total\{direction="to_client"\} [1-9]\d*$/m);

    if (mode === "generic") {
      // ---- New-flow budget: 1 flow/s per CPU with a bucket of 1 → most of a burst is dropped.
      const limited = options(mode, tableSize, { newFlowsPerSecond: 1, newFlowsBurst: 1 });
      assert.deepEqual(await loader.request({ cmd: "reconfigure", options: limited }), { ok: true });
      const r0 = await stats();
      const burst = await peers.client.request(
        { op: "udp", target: VIP, port: VIP_PORT, flows: 30, perFlow: 1, timeoutMs: 1500 },
        20_000,
      );
      const r1 = await stats();
      const dropped = r1.global.DROP_RATE_LIMITED - r0.global.DROP_RATE_LIMITED;
      assert.ok(dropped > 0, "the new-flow limit dropped nothing");
      assert.equal(dropped + burst.received, 30, "each datagram is either dropped by the limit or answered");
      assert.deepEqual(await loader.request({ cmd: "reconfigure", options: options(mode, tableSize) }), {
        ok: true,
      });
      // A reload changing a restart-only key is refused, and nothing changes.
      const bad = await loader.request({
        cmd: "reconfigure",
        options: options(mode, tableSize, { port: 7100 }),
      });
      assert.equal(bad.ok, false);
      assert.match(bad.error, /port needs a restart/);
    }

    await assertNoChecksumErrors(topo);

    // The link cannot be removed or replaced behind the controller's back (netlink refuses).
    const off = await sh("ip", [
      "-n",
      topo.lb,
      "link",
      "set",
      "dev",
      "l0",
      mode === "native" ? "xdpdrv" : "xdpgeneric",
      "off",
    ]);
    assert.notEqual(off.code, 0);
    assert.match(off.stderr, /Can't replace active BPF XDP link/);

    if (mode === "generic") {
      assert.deepEqual(await loader.request({ cmd: "close" }), { ok: true });
      assert.equal((await loader.done).code, 0);
    } else {
      // A crash (SIGKILL: no cleanup code runs) must not leave the program attached.
      loader.kill("SIGKILL");
      await loader.done;
    }
    exited = true;
    await assertNoXdp(topo);
  } finally {
    if (!exited) await loader.stop();
  }
}

Deno.test({
  name: "xdp: TCP + UDP through the XDP load balancer in generic and native mode",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const build = await sh("bash", [`${ROOT}scripts/build-bpf.sh`]);
    assert.equal(build.code, 0, build.stderr);
    // A leftover of a "crashed" earlier run (a pid above pid_max: surely dead) is cleaned up.
    const stale = `${PREFIX}4194305-c`;
    assert.equal((await sh("ip", ["netns", "add", stale])).code, 0);
    const topo = await Topology.create(PREFIX);
    assert.doesNotMatch((await sh("ip", ["netns", "list"])).stdout, new RegExp(`^${stale}\\b`, "m"));
    const procs: LineProc[] = [];
    try {
      const b1 = topo.spawn("b1", topo.b1, "node", [PEER, "server", "b1", String(BE_PORT)]);
      const b2 = topo.spawn("b2", topo.b2, "node", [PEER, "server", "b2", String(BE_PORT)]);
      const client = topo.spawn("client", topo.client, "node", [PEER, "client"]);
      procs.push(b1, b2, client);
      assert.deepEqual(await b1.next(), { ready: true });
      assert.deepEqual(await b2.next(), { ready: true });
      await assertNoChecksumErrors(topo);

      await t.step("generic mode", () => exercise(topo, { b1, b2, client }, "generic", 65537, 41000));
      await t.step("native mode", () => exercise(topo, { b1, b2, client }, "native", 1009, 42000));

      await t.step("startup errors are clear, and nothing stays attached", async () => {
        await topo.setXdpPass(false);
        const startErr = async (opts: XdpOptions, pre: string[] = [], args: string[] = []) => {
          const p = pre.length === 0
            ? startLoader(topo, opts, args)
            : topo.spawn("xdp-cli", topo.lb, pre[0], [
              ...pre.slice(1),
              Deno.execPath(),
              "run",
              "--no-prompt",
              "--allow-ffi",
              CLI,
              JSON.stringify(opts),
            ]);
          try {
            const r = await p.next(30_000);
            return r;
          } finally {
            await p.stop();
          }
        };
        const lo = { ...options("native", 1009), interfaces: ["lo"] };
        let r = await startErr(lo);
        assert.equal(r.kind, "native_refused", JSON.stringify(r));
        assert.match(r.message, /native XDP is not supported by the driver of 'lo'.*fallback_to_generic/);

        const fallback = startLoader(topo, { ...lo, fallbackToGeneric: true });
        try {
          const ok = await fallback.next(30_000);
          assert.equal(ok.event, "ready", JSON.stringify(ok));
          assert.deepEqual(ok.attachments.map((a: { mode: string }) => a.mode), ["generic"]);
          assert.match(await topo.lbLinks(), /xdpgeneric/);
        } finally {
          await fallback.stop();
        }

        r = await startErr({ ...options("generic", 1009), interfaces: ["l0", "nope0"] });
        assert.equal(r.kind, "interface");
        assert.match(r.message, /'nope0' does not exist/);

        r = await startErr({ ...options("generic", 1009), libbpfPath: "libbpf-missing.so.1" });
        assert.equal(r.kind, "libbpf");
        assert.match(r.message, /cannot load libbpf-missing\.so\.1.*Install libbpf/);

        r = await startErr(options("generic", 1009), ["setpriv", "--bounding-set=-all", "--inh-caps=-all"]);
        assert.equal(r.kind, "permission", JSON.stringify(r));
        assert.match(r.message, /EPERM.*root or grant CAP_BPF/);

        r = await startErr({ ...options("generic", 1000) });
        assert.equal(r.kind, "config");
        assert.match(r.message, /table_size must be a prime/);

        // Someone else's program on l1 (netlink-attached): refused, not replaced; l0 released.
        const obj = `${ROOT}bpf/xdp_pass.o`;
        const attach = await sh("ip", [
          "-n",
          topo.lb,
          "link",
          "set",
          "dev",
          "l1",
          "xdpgeneric",
          "obj",
          obj,
          "sec",
          "xdp",
        ]);
        assert.equal(attach.code, 0, attach.stderr);
        try {
          r = await startErr(options("generic", 1009));
          assert.equal(r.kind, "busy", JSON.stringify(r));
          assert.match(r.message, /'l1' already has an XDP program attached \(id \d+\).*xdp off/);
          const links = await topo.lbLinks();
          assert.match(links, /l1@.*xdpgeneric/);
          assert.doesNotMatch(links.split(/\n(?=\d+:)/).find((l) => /^\d+: l0@/.test(l)) ?? "", /xdp/);
        } finally {
          await sh("ip", ["-n", topo.lb, "link", "set", "dev", "l1", "xdpgeneric", "off"]);
        }
        await assertNoXdp(topo);
      });
    } finally {
      for (const p of procs) await p.stop(2000);
      await topo.destroy();
      const left = await sh("ip", ["netns", "list"]);
      assert.doesNotMatch(left.stdout, new RegExp(`^${topo.prefix}-`, "m"), "namespaces left behind");
    }
  },
});
