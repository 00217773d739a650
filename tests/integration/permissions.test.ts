/**
 * The product's permission flags, exercised for real. The gateway runs main.ts under exactly
 * scripts/flags.ts gatewayFlags() (never -A): config load, an http listener in front of the
 * node origin, an https listener whose certificate lives in its own directory (key mode 600),
 * tcp and udp listeners, runtime.workers = 2 (the worker module is loaded under the scoped
 * --allow-read), admin /metrics, SIGHUP reload and SIGUSR1 certificate rotation. A permission
 * missing from deno.json's list or from gatewayFlags() fails here, not in production.
 *
 * scripts/compile.sh is checked too: the flags it prints come from the same deno.json list, it
 * refuses to build without a denort runtime, and the flags it embeds in a binary are exactly
 * those. No denort exists on this machine (the npm deno package ships only the CLI), so the
 * embedding is checked with the deno CLI standing in as the base binary: the result is not a
 * runnable gateway, only a carrier of the metadata `deno compile` writes (permissions, unstable
 * features, embedded files), which is what this file inspects. The gateway itself is exercised
 * under the same flags with `deno run` above.
 */

import assert from "node:assert/strict";
import { baseFlags, gatewayFlags } from "../../scripts/flags.ts";
import { type GatewayProcess, startGatewayAt } from "../helpers/gateway.ts";
import { startNodePeer } from "../helpers/node_peer.ts";
import { startOrigin } from "../helpers/origin.ts";
import { rawExchange, run } from "../helpers/run.ts";
import { selfSigned as selfSignedCert } from "../helpers/self_signed.ts";

const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** A self-signed P-256 certificate for 127.0.0.1 (curl trusts it with --cacert). Key mode 600. */
function selfSigned(dir: string, name: string, cn: string): Promise<{ cert: string; key: string }> {
  return selfSignedCert(dir, name, { cn, san: "IP:127.0.0.1,DNS:localhost" });
}

function config(certDir: string, originAddr: string, udpAddr: string, extraRoute = ""): string {
  return `
[runtime]
workers = 2
drain_timeout = "5s"

[observability]
admin_bind = "127.0.0.1:0"
access_log = false

[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
${extraRoute}
  [[listeners.routes]]
  pool = "app"

[[listeners]]
name = "secure"
bind = "127.0.0.1:0"
protocol = "https"
tls = { cert = "${certDir}/gw.pem", key = "${certDir}/gw.key" }
  [[listeners.routes]]
  pool = "app"

[[listeners]]
name = "raw"
bind = "127.0.0.1:0"
protocol = "tcp"
  [[listeners.routes]]
  pool = "raw"

[[listeners]]
name = "dgram"
bind = "127.0.0.1:0"
protocol = "udp"
  [[listeners.routes]]
  pool = "dgram"

[[pools]]
name = "app"
  [[pools.backends]]
  address = "${originAddr}"

[[pools]]
name = "raw"
  [[pools.backends]]
  address = "${originAddr}"

[[pools]]
name = "dgram"
  [[pools.backends]]
  address = "${udpAddr}"
`;
}

/** curl over TLS trusting only `ca`: the status code, or 0 when the handshake was refused. */
async function curlTls(port: number, ca: string): Promise<{ status: number; body: string }> {
  const r = await run("curl", [
    "-sS",
    "--max-time",
    "5",
    "--cacert",
    ca,
    "-w",
    "\n%{http_code}",
    `https://127.0.0.1:${port}/tls-path`,
  ]);
  const at = r.stdout.lastIndexOf("\n");
  return { status: Number(r.stdout.slice(at + 1)) || 0, body: r.stdout.slice(0, at) };
}

async function metricsText(gw: GatewayProcess): Promise<string> {
  const res = await fetch(gw.admin("/metrics"));
  assert.equal(res.status, 200);
  return await res.text();
}

function sample(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : NaN;
}

async function udpRoundTrip(port: number, msg: string): Promise<string> {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const timer = setTimeout(() => sock.close(), 3000);
  try {
    await sock.send(new TextEncoder().encode(msg), { transport: "udp", hostname: "127.0.0.1", port });
    const [data] = await sock.receive();
    return new TextDecoder().decode(data);
  } catch {
    return "";
  } finally {
    clearTimeout(timer);
    try {
      sock.close();
    } catch { /* closed by the timer */ }
  }
}

Deno.test("product flags: config, http, https, tcp, udp, 2 workers, /metrics, SIGHUP, SIGUSR1", async (t) => {
  const origin = await startOrigin("perm-origin");
  const udp = await startNodePeer("l4_peers.mjs", ["udp-echo", "u1"]);
  const confDir = await Deno.makeTempDir({ prefix: "eg-perm-conf-" });
  const certDir = await Deno.makeTempDir({ prefix: "eg-perm-certs-" });
  const stage = await Deno.makeTempDir({ prefix: "eg-perm-stage-" });
  let gw: GatewayProcess | undefined;
  try {
    const first = await selfSigned(certDir, "gw", "first");
    // The rotation step overwrites gw.pem; curl keeps trusting the first certificate from here.
    const firstCopy = `${stage}/first.pem`;
    await Deno.copyFile(first.cert, firstCopy);
    const configPath = `${confDir}/gateway.toml`;
    const toml = config(certDir, origin.address, `127.0.0.1:${udp.port}`);
    await Deno.writeTextFile(configPath, toml);

    await t.step(
      "the flags are the product's: scoped read, no -A, no run/write, ffi for the https listener",
      () => {
        const flags = gatewayFlags(configPath);
        assert.deepEqual(flags.slice(0, baseFlags().length), baseFlags());
        for (const f of flags) {
          assert.doesNotMatch(f, /^(-A|--allow-all|--allow-run|--allow-write)(=|$)/, f);
        }
        // libc's setsockopt(TCP_NODELAY) on the https listener (src/net/tcp_nodelay.ts).
        assert.equal(flags.filter((f) => f === "--allow-ffi").length, 1);
        const reads = flags.filter((f) => f.startsWith("--allow-read"));
        assert.equal(reads.length, 1);
        assert.deepEqual(
          reads[0].slice("--allow-read=".length).split(",").sort(),
          [confDir, certDir, `${ROOT}/src`].sort(),
        );
      },
    );

    // startGatewayAt runs `deno run --no-prompt <gatewayFlags(configPath)> main.ts configPath`.
    gw = await startGatewayAt(configPath, confDir);
    const g = gw;
    const ready = JSON.parse(await g.waitForLog(/"msg":"gateway ready"/));
    assert.equal(ready.workers, 2, "both data-plane workers loaded src/runtime/worker.ts and started");
    // Under these flags the https listener got TCP_NODELAY through FFI (else each worker warns).
    assert.doesNotMatch(g.logs(), /TCP_NODELAY is not set/);

    await t.step("http listener → node origin", async () => {
      const res = await fetch(g.url("web", "/via-http"));
      assert.equal(res.status, 200);
      assert.equal(await res.text(), "hello from perm-origin: GET /via-http\n");
    });

    await t.step("https listener: certificate and key read from their own directory", async () => {
      const r = await curlTls(g.ports.secure, first.cert);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.body, "hello from perm-origin: GET /tls-path\n");
    });

    await t.step("tcp listener relays to the origin; udp listener answers from the echo peer", async () => {
      const r = await run("curl", ["-sS", "--max-time", "5", `http://127.0.0.1:${g.ports.raw}/via-tcp`]);
      assert.equal(r.stdout, "hello from perm-origin: GET /via-tcp\n", r.stderr);
      assert.equal(await udpRoundTrip(g.ports.dgram, "ping"), "u1:ping");
    });

    await t.step("both workers take connections (each loaded its module under the scoped read)", async () => {
      // One request per connection, so the kernel's reusePort hashing spreads them.
      for (let i = 0; i < 40; i++) {
        const text = await rawExchange(
          g.ports.web,
          `GET /spread/${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        );
        assert.match(text, /^HTTP\/1\.1 200 /);
      }
      const text = await metricsText(g);
      for (const w of ["0", "1"]) {
        assert.ok(
          sample(text, `expressgateway_worker_connections_total{worker="${w}"}`) > 0,
          `worker ${w} accepted no connection:\n${
            text.split("\n").filter((l) => l.includes("worker")).join("\n")
          }`,
        );
      }
    });

    await t.step("admin /metrics answers with the exposition content type", async () => {
      const res = await fetch(g.admin("/metrics"));
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      const text = await res.text();
      assert.equal(sample(text, "expressgateway_workers"), 2);
      assert.match(text, /^expressgateway_build_info\{version="[^"]+"\} 1$/m);
    });

    await t.step("SIGHUP re-reads the config under the scoped read and applies it", async () => {
      await g.writeConfig(
        config(
          certDir,
          origin.address,
          `127.0.0.1:${udp.port}`,
          `  [[listeners.routes]]\n  path_prefix = "/reloaded"\n  respond = { status = 200, body = "generation two" }`,
        ),
      );
      g.signal("SIGHUP");
      await g.waitForLog(/"msg":"config reloaded"/);
      const res = await fetch(g.url("web", "/reloaded"));
      assert.equal(await res.text(), "generation two");
      const text = await metricsText(g);
      assert.equal(sample(text, "expressgateway_config_reloads_total"), 1);
      assert.equal(sample(text, "expressgateway_config_reload_failures_total"), 0);
    });

    await t.step(
      "SIGUSR1 re-reads the certificate files; new handshakes get the new certificate",
      async () => {
        const second = await selfSigned(stage, "second", "second");
        assert.equal((await curlTls(g.ports.secure, second.cert)).status, 0, "not trusted yet");
        // Replace the files the config names (rename: a handshake never sees half a file).
        await Deno.copyFile(second.key, `${certDir}/gw.key.new`);
        await Deno.chmod(`${certDir}/gw.key.new`, 0o600);
        await Deno.copyFile(second.cert, `${certDir}/gw.pem.new`);
        await Deno.rename(`${certDir}/gw.key.new`, `${certDir}/gw.key`);
        await Deno.rename(`${certDir}/gw.pem.new`, `${certDir}/gw.pem`);
        g.signal("SIGUSR1");
        await g.waitForLog(/"msg":"TLS certificates reloaded"/);
        const after = await curlTls(g.ports.secure, second.cert);
        assert.equal(after.status, 200, after.body);
        assert.equal((await curlTls(g.ports.secure, firstCopy)).status, 0, "old certificate retired");
        const text = await metricsText(g);
        assert.equal(sample(text, 'expressgateway_tls_certificate_reloads_total{result="success"}'), 1);
        // The control process read the new file under the same scoped --allow-read; one value,
        // not one per worker added up (the certificate is valid for 2 days).
        const expiry = sample(
          text,
          `expressgateway_tls_certificate_expiry_timestamp_seconds{listener="secure",file="${certDir}/gw.pem"}`,
        );
        const days = (expiry - Date.now() / 1000) / 86400;
        assert.ok(days > 1.9 && days <= 2, `expiry gauge: ${expiry} (${days} days from now)`);
      },
    );

    const logs = g.logs();
    assert.doesNotMatch(logs, /Requires (read|net|env|sys|ffi) access|NotCapable|PermissionDenied/, logs);
    gw = undefined;
    assert.equal(await g.stop(), 0, "SIGTERM drains and exits 0");
  } finally {
    if (gw) await gw.stop();
    await origin.stop();
    await udp.stop();
    for (const d of [confDir, certDir, stage]) await Deno.remove(d, { recursive: true }).catch(() => {});
  }
});

/** Runs main.ts with the given flags to completion (bounded); returns code and output. */
async function runMain(flags: string[], args: string[]): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", ...flags, `${ROOT}/main.ts`, ...args],
    cwd: ROOT,
    env: { LB_LOG_FORMAT: "json" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 30_000);
  const o = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

/** The flags compile.sh prints for these --read paths (the ones it would embed). */
async function compileFlags(reads: string[], extra: string[] = []): Promise<string[]> {
  const r = await run("bash", [
    `${ROOT}/scripts/compile.sh`,
    "--print-flags",
    ...reads.flatMap((p) => ["--read", p]),
    ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const m = /^compile\.sh: permission flags: (.+)$/m.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1].split(" ");
}

Deno.test("a certificate outside the allowed read paths: config error, exit 2, no crash", async () => {
  const confDir = await Deno.makeTempDir({ prefix: "eg-perm-conf-" });
  const elsewhere = await Deno.makeTempDir({ prefix: "eg-perm-elsewhere-" });
  try {
    const { cert, key } = await selfSigned(elsewhere, "gw", "outside");
    const configPath = `${confDir}/gateway.toml`;
    await Deno.writeTextFile(
      configPath,
      `[observability]\nadmin_bind = "127.0.0.1:0"\n\n[[listeners]]\nname = "secure"\nbind = "127.0.0.1:0"\n` +
        `protocol = "https"\ntls = { cert = "${cert}", key = "${key}" }\n  [[listeners.routes]]\n` +
        `  respond = { status = 200, body = "ok" }\n`,
    );
    // What a binary built with `compile.sh --read <confDir>` runs with; src/ stands in for the
    // worker module the binary embeds.
    const flags = (await compileFlags([confDir])).map((f) =>
      f.startsWith("--allow-read=") ? `${f},${ROOT}/src` : f
    );
    for (const args of [[configPath], ["--check", configPath]]) {
      const r = await runMain(flags, args);
      assert.equal(r.code, 2, r.out);
      assert.match(
        r.out,
        /listeners\[0\]\.tls\.cert: cannot read '.*gw\.pem': not allowed by this process's --allow-read/,
      );
      assert.match(r.out, /listeners\[0\]\.tls\.key: cannot read '.*gw\.key': not allowed/);
      assert.doesNotMatch(r.out, /gateway ready|Uncaught|panicked|^\s+at /m, r.out);
    }
  } finally {
    await Deno.remove(confDir, { recursive: true });
    await Deno.remove(elsewhere, { recursive: true });
  }
});

Deno.test("without src/ in --allow-read, workers fail to start with a clear error (the scoping matters)", async () => {
  const confDir = await Deno.makeTempDir({ prefix: "eg-perm-conf-" });
  try {
    const configPath = `${confDir}/gateway.toml`;
    await Deno.writeTextFile(
      configPath,
      `[runtime]\nworkers = 2\n[observability]\nadmin_bind = "127.0.0.1:0"\n\n[[listeners]]\nname = "web"\n` +
        `bind = "127.0.0.1:0"\nprotocol = "http"\n  [[listeners.routes]]\n  respond = { status = 200 }\n`,
    );
    const flags = gatewayFlags(configPath).map((f) =>
      f.startsWith("--allow-read=") ? `--allow-read=${confDir}` : f
    );
    const r = await runMain(flags, [configPath]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /expressgateway: start failed: worker 0 died: Requires read access to .*worker\.ts/);
    assert.doesNotMatch(r.out, /gateway ready/);
  } finally {
    await Deno.remove(confDir, { recursive: true });
  }
});

Deno.test("compile.sh: flags from deno.json, no build without denort, and the binary embeds exactly those flags", async () => {
  const work = await Deno.makeTempDir({ prefix: "eg-compile-" });
  try {
    // The printed flags: deno.json's list, the --read paths, --allow-ffi unless --no-ffi.
    const plain = await compileFlags([]);
    assert.deepEqual(plain, [
      ...baseFlags(),
      "--allow-read=/etc/expressgateway",
      "--allow-ffi",
      "--no-prompt",
    ]);
    const noFfi = await compileFlags([], ["--no-ffi"]);
    assert.deepEqual(noFfi, [...baseFlags(), "--allow-read=/etc/expressgateway", "--no-prompt"]);
    const xdp = await compileFlags(["/etc/eg", "/etc/ssl/certs"], ["--xdp"]);
    assert.deepEqual(xdp, [
      ...baseFlags(),
      "--allow-read=/etc/eg,/etc/ssl/certs",
      "--allow-ffi",
      "--no-prompt",
    ]);
    // --write (the etcd cache_file's directory) is the only write access, and only when asked for.
    assert.deepEqual(await compileFlags(["/etc/eg"], ["--write", "/var/lib/eg"]), [
      ...baseFlags(),
      "--allow-read=/etc/eg",
      "--allow-write=/var/lib/eg",
      "--allow-ffi",
      "--no-prompt",
    ]);
    const both = await run("bash", [`${ROOT}/scripts/compile.sh`, "--xdp", "--no-ffi", "--print-flags"]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--xdp needs FFI/);
    const rel = await run("bash", [`${ROOT}/scripts/compile.sh`, "--read", "etc/eg", "--print-flags"]);
    assert.equal(rel.code, 2);
    assert.match(rel.stderr, /must be an absolute path/);

    // No DENORT_BIN and nothing cached (empty DENO_DIR): a clear refusal, before deno tries to download.
    const env: Record<string, string> = { ...Deno.env.toObject(), DENO_DIR: `${work}/deno-dir` };
    delete env.DENORT_BIN;
    const none = await new Deno.Command("bash", {
      args: [`${ROOT}/scripts/compile.sh`, "--output", `${work}/eg`],
      env,
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const noneErr = new TextDecoder().decode(none.stderr);
    assert.equal(none.code, 2, noneErr);
    assert.match(noneErr, /no denort runtime: set DENORT_BIN=\/path\/to\/denort/);
    // The deno CLI is not a runtime for compiled programs: refused unless the test-only switch is given.
    const cli = await new Deno.Command("bash", {
      args: [`${ROOT}/scripts/compile.sh`, "--output", `${work}/eg`],
      env: { ...env, DENORT_BIN: Deno.execPath() },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(cli.code, 2);
    assert.match(new TextDecoder().decode(cli.stderr), /is the deno CLI, not denort/);

    // The metadata deno compile embeds, with the deno CLI standing in for denort.
    const out = `${work}/expressgateway`;
    const built = await new Deno.Command("bash", {
      args: [
        `${ROOT}/scripts/compile.sh`,
        "--allow-cli-runtime-for-tests",
        "--read",
        "/etc/expressgateway",
        "--read",
        "/etc/ssl/certs",
        "--output",
        out,
      ],
      env: { DENORT_BIN: Deno.execPath() },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const builtOut = new TextDecoder().decode(built.stdout) + new TextDecoder().decode(built.stderr);
    assert.equal(built.code, 0, builtOut);
    assert.match(
      builtOut,
      /^compile\.sh: permission flags: .*--allow-read=\/etc\/expressgateway,\/etc\/ssl\/certs/m,
    );
    const size = (await Deno.stat(out)).size;
    const file = await Deno.open(out);
    const tailBytes = new Uint8Array(Math.min(size, 8 * 1024 * 1024));
    await file.seek(size - tailBytes.length, Deno.SeekMode.Start);
    let got = 0;
    while (got < tailBytes.length) {
      const n = await file.read(tailBytes.subarray(got));
      if (n === null) break;
      got += n;
    }
    file.close();
    const tail = new TextDecoder("latin1").decode(tailBytes);
    const perms = /"permissions":(\{[^{}]*\})/.exec(tail);
    assert.ok(perms, "permissions metadata found in the binary");
    const p = JSON.parse(perms[1]);
    assert.deepEqual(p.allow_read, ["/etc/expressgateway", "/etc/ssl/certs"]);
    assert.deepEqual(p.allow_net, [], "--allow-net (all hosts)");
    assert.deepEqual(p.allow_env, ["LB_LOG_FORMAT", "LB_LOG_LEVEL"]);
    assert.deepEqual(p.allow_sys, ["hostname"]);
    for (const k of ["allow_run", "allow_write"]) assert.equal(p[k], null, k);
    assert.deepEqual(p.allow_ffi, [], "--allow-ffi (TCP_NODELAY on https listeners)");
    assert.equal(p.prompt, false, "--no-prompt");
    const unstable = /"unstable_config":(\{[^{}]*\})/.exec(tail);
    assert.ok(unstable);
    assert.deepEqual(JSON.parse(unstable[1]).features, ["net"], "--unstable-net");
    assert.match(tail, /"entrypoint_key":"main\.ts"/);
    // The embedded file tree (JSON): src/runtime/ holds worker.ts.
    const runtimeDir = tail.indexOf('{"Dir":{"n":"runtime","e":[');
    assert.ok(runtimeDir > 0, "src/runtime/ embedded");
    const nextDir = tail.indexOf('{"Dir":{"n":', runtimeDir + 10);
    assert.ok(
      tail.slice(runtimeDir, nextDir > 0 ? nextDir : undefined).includes('{"File":{"n":"worker.ts"'),
      "src/runtime/worker.ts embedded (--include)",
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
