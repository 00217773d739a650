/**
 * HTTPS on both sides with certificates made by openssl in the test: an https listener
 * (ALPN http/1.1) checked with curl --cacert and openssl s_client; a second certificate chosen
 * by SNI; SIGUSR1 rotation (a new connection sees the new certificate, a keep-alive connection
 * opened before keeps working); an upstream TLS backend (node https) verified against a CA
 * with server_name, and a wrong CA giving 502 plus an upstream error in /metrics.
 */

import assert from "node:assert/strict";
import { type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { type NodePeer, startNodePeer } from "../helpers/node_peer.ts";
import { startOrigin } from "../helpers/origin.ts";
import { run } from "../helpers/run.ts";
import { until } from "../helpers/common.ts";
import { NEW_P256_KEY, selfSigned } from "../helpers/self_signed.ts";
import { RawClient, text } from "../unit/h1/raw_client.ts";

async function openssl(args: string[]): Promise<void> {
  const r = await run("openssl", args, { timeoutMs: 20_000 });
  if (r.code !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
}

/** A CA (for trust) and leaf certificates it signs, EC P-256, in `dir`. Keys are mode 600. */
class Pki {
  constructor(readonly dir: string, readonly ca: string) {}

  static async create(dir: string, name: string): Promise<Pki> {
    const ca = `${dir}/${name}`;
    await selfSigned(dir, name, {
      ext: ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"],
    });
    return new Pki(dir, ca);
  }

  /** Issues `${file}.pem`/`${file}.key` for `names` (DNS names; 127.0.0.1 always included). */
  async issue(file: string, cn: string, names: string[], days = 2): Promise<{ cert: string; key: string }> {
    const base = `${this.dir}/${file}`;
    await openssl([
      "req",
      ...NEW_P256_KEY,
      "-keyout",
      `${base}.key.new`,
      "-out",
      `${base}.csr`,
      "-subj",
      `/CN=${cn}`,
    ]);
    const ext = `${base}.ext`;
    await Deno.writeTextFile(
      ext,
      `subjectAltName=${[...names.map((n) => `DNS:${n}`), "IP:127.0.0.1"].join(",")}\n` +
        "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    await openssl([
      "x509",
      "-req",
      "-in",
      `${base}.csr`,
      "-CA",
      `${this.ca}.pem`,
      "-CAkey",
      `${this.ca}.key`,
      "-CAcreateserial",
      "-out",
      `${base}.pem.new`,
      "-days",
      String(days),
      "-extfile",
      ext,
    ]);
    await Deno.chmod(`${base}.key.new`, 0o600);
    // Replace in place (rename), as an operator's cert renewal would.
    await Deno.rename(`${base}.key.new`, `${base}.key`);
    await Deno.rename(`${base}.pem.new`, `${base}.pem`);
    return { cert: `${base}.pem`, key: `${base}.key` };
  }
}

/** The subject CN the server presents for `serverName` (openssl s_client). */
async function presentedCn(port: number, serverName?: string): Promise<string> {
  const args = ["s_client", "-connect", `127.0.0.1:${port}`, "-alpn", "http/1.1"];
  if (serverName) args.push("-servername", serverName);
  else args.push("-noservername");
  const r = await run("openssl", args, { timeoutMs: 10_000, stdin: new Uint8Array(0) });
  const m = /subject=.*CN\s*=\s*([^\s,/]+)/.exec(r.stdout);
  assert.ok(m, `no subject in s_client output: ${r.stdout.slice(0, 500)} ${r.stderr.slice(0, 500)}`);
  assert.match(r.stdout, /ALPN protocol: http\/1\.1/);
  return m[1];
}

/** A certificate file's notAfter in Unix seconds, as openssl reads it. */
async function notAfter(file: string): Promise<number> {
  const r = await run("openssl", ["x509", "-noout", "-enddate", "-in", file]);
  const m = /^notAfter=(.+)$/m.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  return Date.parse(m[1]) / 1000;
}

async function metric(gw: GatewayProcess, re: RegExp): Promise<number> {
  const body = await (await fetch(gw.admin("/metrics"))).text();
  let sum = 0;
  for (const line of body.split("\n")) {
    if (re.test(line)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

Deno.test("https listener: curl --cacert over ALPN http/1.1, SNI certificates, SIGUSR1 rotation", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-tls-" });
  const origin = await startOrigin("tls-front-origin");
  let gw: GatewayProcess | undefined;
  try {
    const pki = await Pki.create(dir, "test-ca");
    const a = await pki.issue("a", "a.test", ["a.test"]);
    const b = await pki.issue("b", "b.test", ["b.test"], 5);
    gw = await startGateway(`
[observability]
admin_bind = "127.0.0.1:0"


[[listeners]]
name = "secure"
bind = "127.0.0.1:0"
protocol = "https"
  [listeners.tls]
  cert = "${a.cert}"
  key = "${a.key}"
  [[listeners.tls.certificates]]
  server_names = ["b.test"]
  cert = "${b.cert}"
  key = "${b.key}"
  [[listeners.routes]]
  pool = "app"

[[pools]]
name = "app"
  [[pools.backends]]
  address = "${origin.address}"
`);
    const port = gw.ports.secure;
    const curl = (host: string, path: string, extra: string[] = []) =>
      run("curl", [
        "-sS",
        "-v",
        "--fail",
        "--http1.1",
        "--cacert",
        `${pki.ca}.pem`,
        "--resolve",
        `${host}:${port}:127.0.0.1`,
        ...extra,
        `https://${host}:${port}${path}`,
      ]);

    // curl verifies the chain and the name, and negotiates http/1.1 by ALPN
    const r = await curl("a.test", "/headers");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /ALPN[^\n]*(accepted|server accepted)[^\n]*http\/1\.1/i);
    const j = JSON.parse(r.stdout);
    assert.equal(j.headers["x-forwarded-proto"], "https");
    assert.equal(j.headers.host, `a.test:${port}`);
    // a larger body over TLS, both ways
    const big = await curl("a.test", "/bytes/3000000", ["-o", "/dev/null", "-w", "%{size_download}"]);
    assert.equal(big.stdout, "3000000");

    // SNI: b.test gets its own certificate (curl would refuse a name mismatch)
    const rb = await curl("b.test", "/");
    assert.equal(rb.code, 0, rb.stderr);
    assert.equal(await presentedCn(port, "b.test"), "b.test");
    assert.equal(await presentedCn(port, "a.test"), "a.test");
    assert.equal(await presentedCn(port, "unknown.test"), "a.test"); // default certificate
    assert.equal(await presentedCn(port), "a.test"); // no SNI at all

    // Each served file's expiry is a gauge, as openssl reads the file.
    const expiry = (file: string) =>
      metric(
        gw!,
        new RegExp(
          `^expressgateway_tls_certificate_expiry_timestamp_seconds\\{listener="secure",file="${file}"\\}`,
        ),
      );
    assert.equal(await expiry(a.cert), await notAfter(a.cert));
    assert.equal(await expiry(b.cert), await notAfter(b.cert));
    assert.ok(await expiry(b.cert) - await expiry(a.cert) > 2.9 * 86400); // 5 days against 2

    // SIGUSR1: a keep-alive connection opened before the rotation...
    const caPem = await Deno.readTextFile(`${pki.ca}.pem`);
    const before = await RawClient.connectTls(port, "a.test", [caPem]);
    try {
      await before.write("GET /one HTTP/1.1\r\nHost: a.test\r\n\r\n");
      assert.equal((await before.readResponse()).status, 200);
      // ...then the files are replaced by a new certificate (new CN) and the signal sent
      const oldExpiry = await expiry(a.cert);
      await pki.issue("a", "a2.test", ["a.test"], 9);
      gw.signal("SIGUSR1");
      let cn = "";
      for (let i = 0; i < 50 && cn !== "a2.test"; i++) {
        await new Promise((res) => setTimeout(res, 100));
        cn = await presentedCn(port, "a.test");
      }
      assert.equal(cn, "a2.test", "new connections do not see the rotated certificate");
      // The gauge follows the rotation (set after every listener reloaded).
      await until("the expiry gauge follows the rotation", async () => await expiry(a.cert) !== oldExpiry);
      assert.equal(await expiry(a.cert), await notAfter(a.cert));
      // the new certificate is valid for curl too
      const after = await curl("a.test", "/after");
      assert.equal(after.code, 0, after.stderr);
      // the SNI certificate is still served
      assert.equal(await presentedCn(port, "b.test"), "b.test");
      // the old connection still works, on its old session
      await before.write("GET /two HTTP/1.1\r\nHost: a.test\r\n\r\n");
      const again = await before.readResponse();
      assert.equal(again.status, 200);
      assert.match(text(again.body), /GET \/two/);

      // A rotation that cannot load the files: the listener keeps serving the certificate it has,
      // the failure names it, and the expiry gauge keeps the value of what is served.
      const served = await expiry(a.cert);
      await Deno.writeTextFile(a.cert, "not a certificate\n");
      gw.signal("SIGUSR1");
      const line = await gw.waitForLog(/TLS certificate reload failed/);
      assert.match(line, /"listener":"secure"/);
      assert.equal(
        await metric(gw, /^expressgateway_tls_certificate_reloads_total\{result="failure"\}/),
        1,
      );
      assert.equal(await presentedCn(port, "a.test"), "a2.test");
      assert.equal(await expiry(a.cert), served);
    } finally {
      before.close();
    }
  } finally {
    if (gw) assert.equal(await gw.stop(), 0);
    await origin.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("upstream TLS: verified against the pool's CA and server_name; a wrong CA → 502, counted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-tls-up-" });
  let peer: NodePeer | undefined;
  let gw: GatewayProcess | undefined;
  try {
    const pki = await Pki.create(dir, "origin-ca");
    const other = await Pki.create(dir, "other-ca");
    const leaf = await pki.issue("origin", "origin.internal", ["origin.internal"]);
    peer = await startNodePeer("origin.mjs", ["tls-origin", "0", "--tls", leaf.cert, leaf.key]);
    gw = await startGateway(`
[observability]
admin_bind = "127.0.0.1:0"


${
      ["good", "bad", "wrongname"].map((p) => `
[[listeners]]
name = "${p}"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  pool = "${p}"
`).join("")
    }
[[pools]]
name = "good"
  [[pools.backends]]
  address = "127.0.0.1:${peer.port}"
  tls = { ca = "${pki.ca}.pem", server_name = "origin.internal" }

[[pools]]
name = "bad"
  [[pools.backends]]
  address = "127.0.0.1:${peer.port}"
  tls = { ca = "${other.ca}.pem", server_name = "origin.internal" }

[[pools]]
name = "wrongname"
  [[pools.backends]]
  address = "127.0.0.1:${peer.port}"
  tls = { ca = "${pki.ca}.pem", server_name = "not-the-origin.internal" }
`);
    const g: GatewayProcess = gw;
    const ok = await fetch(g.url("good", "/sha256"), { method: "POST", body: "over tls" });
    assert.equal(ok.status, 200);
    const j = await ok.json();
    assert.equal(j.bytes, 8);
    assert.equal(ok.headers.get("x-origin"), "tls-origin");
    // keep-alive to the TLS backend: more requests, still fine
    for (let i = 0; i < 5; i++) {
      const r = await fetch(g.url("good", `/bytes/${100_000 + i}`));
      assert.equal((await r.arrayBuffer()).byteLength, 100_000 + i);
    }
    for (const pool of ["bad", "wrongname"]) {
      const before = await metric(g, new RegExp(`^expressgateway_upstream_errors_total\\{.*pool="${pool}"`));
      const bad = await fetch(g.url(pool, "/x"));
      assert.equal(bad.status, 502, pool);
      await bad.body?.cancel();
      const after = await metric(g, new RegExp(`^expressgateway_upstream_errors_total\\{.*pool="${pool}"`));
      assert.ok(after > before, `${pool}: upstream error not counted`);
    }
    // the operator is told why (logs are flushed every 50 ms)
    await g.waitForLog(/upstream failed.*(certificate|UnknownIssuer|NotValidForName|invalid peer)/i, 3000);
  } finally {
    if (gw) assert.equal(await gw.stop(), 0);
    await peer?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
