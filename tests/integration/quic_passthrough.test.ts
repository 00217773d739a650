/**
 * QUIC Mode A passthrough ([passthrough], src/quic/passthrough.ts) with real QUIC peers:
 * Debian's ngtcp2 example client (gtlsclient) downloads through the gateway from two ngtcp2
 * servers (gtlsserver, 18-byte CIDs) and Caddy's HTTP/3 server (quic-go, 4-byte CIDs).
 *
 * - the gateway has no certificate: its config names none and its read permission does not
 *   even cover the directory the backends' key lives in; TLS runs end to end;
 * - new connections spread by Maglev over their Destination CID: the test picks DCIDs
 *   (gtlsclient --dcid) whose Maglev slot it computes, and checks each backend got its flows;
 * - a client whose address changes (NAT rebinding: same CID, new port) keeps its download;
 * - a backend removed by a reload keeps its established flow (flow table before Maglev);
 * - garbage, unknown-CID and undersized Initial datagrams are dropped and counted.
 */
import assert from "node:assert/strict";
import { maglevTable } from "../../src/balancer/maglev.ts";
import { cidKey, hashBytes, QUIC_V1 } from "../../src/quic/packet.ts";
import { gatewayFlags } from "../../scripts/flags.ts";
import { type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { run } from "../helpers/run.ts";
import { selfSigned } from "../helpers/self_signed.ts";

const FILE_BYTES = 1_000_000;

function freeUdpPort(): number {
  const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const port = (s.addr as Deno.NetAddr).port;
  s.close();
  return port;
}

interface Backends {
  certDir: string;
  www: string;
  addrs: string[];
  procs: Deno.ChildProcess[];
}

async function startBackends(): Promise<Backends> {
  const certDir = await Deno.makeTempDir({ prefix: "eg-qp-pki-" });
  const www = `${certDir}/www`;
  await Deno.mkdir(www);
  const data = new Uint8Array(FILE_BYTES);
  for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  await Deno.writeFile(`${www}/file`, data);
  const pki = await selfSigned(certDir, "server", { cn: "localhost", days: 1 });
  const b: Backends = { certDir, www, addrs: [], procs: [] };
  for (let i = 0; i < 2; i++) {
    const port = freeUdpPort();
    b.procs.push(
      new Deno.Command("gtlsserver", {
        args: ["-q", "-d", www, "127.0.0.1", String(port), pki.key, pki.cert],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn(),
    );
    b.addrs.push(`127.0.0.1:${port}`);
  }
  const caddyPort = freeUdpPort();
  await Deno.writeTextFile(
    `${certDir}/Caddyfile`,
    `{
  admin off
  auto_https off
  https_port ${caddyPort}
  servers {
    protocols h1 h2 h3
  }
}
https://127.0.0.1:${caddyPort} {
  bind 127.0.0.1
  tls ${pki.cert} ${pki.key}
  root * ${www}
  file_server
}
`,
  );
  b.procs.push(
    new Deno.Command("caddy", {
      args: ["run", "--config", `${certDir}/Caddyfile`, "--adapter", "caddyfile"],
      env: { HOME: certDir, XDG_CONFIG_HOME: certDir, XDG_DATA_HOME: certDir },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn(),
  );
  b.addrs.push(`127.0.0.1:${caddyPort}`);
  // Ready when a direct download from each works (bounded).
  for (const addr of b.addrs) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await download(addr, `${certDir}/probe`, { timeout: "2" });
      if (r.ok) break;
      if (Date.now() > deadline) throw new Error(`backend ${addr} never served: ${r.stderr}`);
      await new Promise((res) => setTimeout(res, 200));
    }
  }
  return b;
}

async function stopBackends(b: Backends): Promise<void> {
  for (const p of b.procs) {
    try {
      p.kill("SIGTERM");
    } catch { /* exited */ }
    await p.status;
  }
  await Deno.remove(b.certDir, { recursive: true }).catch(() => {});
}

/** gtlsclient GET /file from addr into a fresh directory; ok when the file arrived whole. */
async function download(
  addr: string,
  dir: string,
  opts: { dcid?: string; extra?: string[]; timeout?: string } = {},
): Promise<{ ok: boolean; stderr: string; bytes?: Uint8Array }> {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const [host, port] = addr.split(":");
  const r = await run("gtlsclient", [
    "-q",
    "--exit-on-all-streams-close",
    `--timeout=${opts.timeout ?? "5"}`,
    "--download",
    dir,
    ...(opts.dcid ? [`--dcid=${opts.dcid}`] : []),
    ...(opts.extra ?? []),
    host,
    port,
    `https://${addr}/file`,
  ], { timeoutMs: 20_000 });
  const bytes = await Deno.readFile(`${dir}/file`).catch(() => undefined);
  return { ok: r.code === 0 && bytes?.length === FILE_BYTES, stderr: r.stderr.slice(-500), bytes };
}

/** DCIDs (hex) that Maglev sends to each backend: `perBackend` for each, deterministic order. */
function dcidsFor(addrs: string[], perBackend: number): string[][] {
  const table = maglevTable(addrs, addrs.map(() => 1), 65537);
  const out: string[][] = addrs.map(() => []);
  for (let i = 0; out.some((l) => l.length < perBackend) && i < 100_000; i++) {
    const cid = new Uint8Array(8);
    new DataView(cid.buffer).setUint32(0, 0x45470000 + i); // "EG" + counter
    new DataView(cid.buffer).setUint32(4, i * 2654435761);
    const idx = table[hashBytes(cid) % table.length];
    if (out[idx].length < perBackend) out[idx].push(cidKey(cid));
  }
  return out;
}

function config(pool: string[]): string {
  return `
[runtime]
workers = 2
drain_timeout = "1s"

[observability]
admin_bind = "127.0.0.1:0"

[passthrough]
bind = "127.0.0.1:0"
pool = "quic"
server_cid_length = 18
idle_timeout = "30s"

[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  respond = { status = 200, body = "ok" }

[[pools]]
name = "quic"
${pool.map((a) => `  [[pools.backends]]\n  address = "${a}"`).join("\n")}
`;
}

async function metric(gw: GatewayProcess, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(gw.admin("/metrics"))).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ""} `));
  return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
}

Deno.test("QUIC passthrough: gtlsclient through the gateway to gtlsserver and Caddy", async (t) => {
  const b = await startBackends();
  let gw: GatewayProcess | undefined;
  try {
    gw = await startGateway(config(b.addrs));
    const g = gw;
    const port = g.ports.passthrough;
    assert.ok(port > 0, `passthrough port in ${JSON.stringify(g.ports)}`);
    const front = `127.0.0.1:${port}`;
    const expected = await Deno.readFile(`${b.www}/file`);

    await t.step("the gateway holds no certificate and cannot read the backends' key", () => {
      const text = Deno.readTextFileSync(g.configPath);
      assert.doesNotMatch(text, /cert|key\s*=/);
      const reads = gatewayFlags(g.configPath).filter((f) => f.startsWith("--allow-read"));
      assert.ok(reads.length > 0);
      for (const f of reads) assert.ok(!f.includes(b.certDir), `gateway may read ${b.certDir}: ${f}`);
    });

    await t.step(
      "clients spread over every backend by Maglev on their DCID; downloads complete",
      async () => {
        const dcids = dcidsFor(b.addrs, 2);
        const jobs = dcids.flatMap((list, i) =>
          list.map((dcid, j) => download(front, `${g.dir}/dl-${i}-${j}`, { dcid }))
        );
        const results = await Promise.all(jobs);
        for (const [i, r] of results.entries()) {
          assert.ok(r.ok, `client ${i} failed: ${r.stderr}`);
          assert.deepEqual(r.bytes, expected);
        }
        for (const addr of b.addrs) {
          const flows = await metric(g, "expressgateway_backend_in_flight", `pool="quic",backend="${addr}"`);
          assert.equal(flows, 2, `backend ${addr} has ${flows} flows, expected 2`);
        }
        assert.equal(await metric(g, "expressgateway_quic_passthrough_flows"), 6);
        const down = await metric(
          g,
          "expressgateway_quic_passthrough_bytes_total",
          'direction="backend_to_client"',
        );
        assert.ok(down >= 6 * FILE_BYTES, `only ${down} bytes relayed down`);
        assert.ok(
          await metric(
            g,
            "expressgateway_quic_passthrough_datagrams_total",
            'direction="client_to_backend"',
          ) > 0,
        );
        // 6 client DCIDs + each backend's chosen CID (from its long headers).
        assert.ok(await metric(g, "expressgateway_quic_passthrough_table_entries", 'kind="cid"') >= 12);
        assert.equal(
          await metric(g, "expressgateway_quic_passthrough_drops_total", 'reason="unknown_cid"'),
          0,
        );
      },
    );

    await t.step("garbage, unknown CIDs and undersized Initials are dropped and counted", async () => {
      const s = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
      try {
        const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port };
        await s.send(Uint8Array.from([0x41, ...new Array(30).fill(0x33)]), to); // short, unknown CID
        await s.send(Uint8Array.from([0xc0, 0, 0, 0, 1, 30, 1, 2]), to); // truncated long header
        const small = new Uint8Array(300); // a well-formed v1 Initial, but < 1200 bytes
        small.set([0xc0, 0, 0, 0, QUIC_V1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x41, 0x1a]);
        await s.send(small, to);
      } finally {
        s.close();
      }
      const deadline = Date.now() + 5000;
      const drops = () =>
        Promise.all(
          ["unknown_cid", "malformed", "short_initial"].map((r) =>
            metric(g, "expressgateway_quic_passthrough_drops_total", `reason="${r}"`)
          ),
        );
      let got = await drops();
      while (got.some((n) => n < 1) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        got = await drops();
      }
      assert.deepEqual(got, [1, 1, 1]);
    });

    await t.step("a client whose port changes (same CID) keeps its download", async () => {
      const before = await metric(g, "expressgateway_quic_passthrough_migrations_total");
      const r = await download(front, `${g.dir}/dl-migrate`, {
        extra: ["--change-local-addr=100ms", "--nat-rebinding", "--delay-stream=400ms"],
      });
      assert.ok(r.ok, `migrating client failed: ${r.stderr}`);
      assert.deepEqual(r.bytes, expected);
      assert.ok(await metric(g, "expressgateway_quic_passthrough_migrations_total") > before);
    });

    await t.step("a backend removed by a reload keeps its established flow", async () => {
      const [toA] = dcidsFor(b.addrs, 1);
      // The request starts 1.5 s after the handshake; the reload lands in between.
      const job = download(front, `${g.dir}/dl-reload`, { dcid: toA[0], extra: ["--delay-stream=1500ms"] });
      await new Promise((r) => setTimeout(r, 500));
      await g.writeConfig(config(b.addrs.slice(1)));
      g.signal("SIGHUP");
      await g.waitForLog(/"msg":"config reloaded"/);
      const r = await job;
      assert.ok(r.ok, `established flow broke on reload: ${r.stderr}`);
      assert.deepEqual(r.bytes, expected);
      // A new connection with the same DCID now goes to a remaining backend, and works.
      const again = await download(front, `${g.dir}/dl-after`, { dcid: toA[0] });
      assert.ok(again.ok, again.stderr);
    });

    assert.equal(await g.stop(), 0);
    gw = undefined;
  } finally {
    if (gw) await gw.stop();
    await stopBackends(b);
  }
});
