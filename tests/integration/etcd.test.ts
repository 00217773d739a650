/**
 * The etcd control plane end to end, against a real etcd (tests/helpers/etcd.ts) and real
 * gateway processes under the product's permission flags: three gateways converge on each
 * pushed revision and serve it; an invalid revision is refused by all three (old config kept,
 * config_revision_rejected_total = 1); etcd killed and restarted under traffic loses no
 * request and the next push lands; a stale push is refused; `fleet` lists the instances and
 * marks one behind; a gateway boots from its cache when etcd is down, and fails clearly
 * without one.
 */

import assert from "node:assert/strict";
import { gatewayFlags } from "../../scripts/flags.ts";
import { EtcdClient } from "../../src/control/etcd_client.ts";
import { readFleet } from "../../src/control/fleet.ts";
import { makeEtcdPki, startEtcd } from "../helpers/etcd.ts";
import { type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { run, type RunResult } from "../helpers/run.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const PREFIX = "/eg-test";
const KEY = `${PREFIX}/config`;

/** A complete gateway document whose one route answers `body`. */
function doc(body: string, route = `respond = { status = 200, body = "${body}" }`): string {
  return `
[runtime]
workers = 1
drain_timeout = "2s"

[observability]
admin_bind = "127.0.0.1:0"
access_log = false

[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  ${route}
`;
}

function bootstrap(etcdUrl: string, id: string, cacheFile?: string, extra = ""): string {
  return `
[control]
source = "etcd"
endpoints = ["${etcdUrl}"]
prefix = "${PREFIX}"
instance_id = "${id}"
lease_ttl = "5s"
boot_timeout = "500ms"
${cacheFile ? `cache_file = "${cacheFile}"` : ""}
${extra}
`;
}

/** The product CLI (main.ts) under the product's flags, as an operator runs it. */
async function cli(args: string[], flagsFor: string): Promise<RunResult> {
  return await run(Deno.execPath(), [
    "run",
    "--no-prompt",
    ...gatewayFlags(flagsFor),
    `${ROOT}main.ts`,
    ...args,
  ], { timeoutMs: 30_000 });
}

async function push(dir: string, etcdUrl: string, text: string, extra: string[] = []): Promise<RunResult> {
  const file = `${dir}/push-${crypto.randomUUID()}.toml`;
  await Deno.writeTextFile(file, text);
  return await cli(["config", "push", file, "--etcd", etcdUrl, "--prefix", PREFIX, ...extra], file);
}

function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    if (line.slice(0, sp) === series) return Number(line.slice(sp + 1));
  }
  return undefined;
}

async function metric(gw: GatewayProcess, series: string): Promise<number | undefined> {
  const r = await fetch(gw.admin("/metrics"));
  return sample(await r.text(), series);
}

async function body(gw: GatewayProcess): Promise<string> {
  const r = await fetch(gw.url("web", "/"));
  return await r.text();
}

/** Waits for a gateway that should exit by itself; SIGKILL after a bound (the code then fails the test). */
async function exitCode(gw: GatewayProcess, timeoutMs = 15_000): Promise<number> {
  const t = setTimeout(() => gw.signal("SIGKILL"), timeoutMs);
  try {
    return (await gw.child.status).code;
  } finally {
    clearTimeout(t);
    await gw.stop();
  }
}

/** Polls until `check` is true; returns the time it took (ms). Bounded. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<number> {
  const start = performance.now();
  for (;;) {
    if (await check().catch(() => false)) return performance.now() - start;
    if (performance.now() - start > timeoutMs) {
      throw new Error(`timed out (${timeoutMs} ms) waiting for ${what}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Pushes with the CLI and waits until every gateway serves `expected`; returns the slowest time. */
async function pushAndConverge(
  dir: string,
  etcdUrl: string,
  gws: GatewayProcess[],
  expected: string,
  timeoutMs: number,
): Promise<number> {
  const r = await push(dir, etcdUrl, doc(expected));
  assert.equal(r.code, 0, r.stderr);
  const times = await Promise.all(
    gws.map((gw) =>
      until(`${gw.ports.web} to serve ${expected}`, async () => (await body(gw)) === expected, timeoutMs)
    ),
  );
  return Math.max(...times);
}

Deno.test("etcd: a fleet of three converges, refuses invalid revisions, survives etcd restarts", async (t) => {
  const etcd = await startEtcd();
  const dir = await Deno.makeTempDir({ prefix: "eg-etcd-test-" });
  const gws: GatewayProcess[] = [];
  const client = new EtcdClient({ endpoints: [etcd.url] });
  try {
    const r = await push(dir, etcd.url, doc("v1"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pushed .* to \/eg-test\/config: revision \d+ \(was absent\)/);

    const ids = ["gw-a", "gw-b", "gw-c"];
    gws.push(
      ...await Promise.all(ids.map((id) => startGateway(bootstrap(etcd.url, id, `${dir}/cache-${id}.toml`)))),
    );
    for (const gw of gws) assert.equal(await body(gw), "v1");

    await t.step("each pushed revision reaches all three within 1 s", async () => {
      const slowest = await pushAndConverge(dir, etcd.url, gws, "v2", 1000);
      console.log(`converged on v2 ${slowest.toFixed(0)} ms after config push exited`);
      // Timed from just before the write to etcd: three more revisions, each everywhere in < 1 s.
      const times: number[] = [];
      for (const v of ["v2a", "v2b", "v2"]) {
        const start = performance.now();
        await client.put(KEY, doc(v));
        await Promise.all(gws.map((gw) => until(v, async () => (await body(gw)) === v, 1000)));
        times.push(performance.now() - start);
      }
      console.log(`write → served by all three: ${times.map((t) => t.toFixed(0)).join(", ")} ms`);
      const rev = (await client.get(KEY)).modRevision;
      for (const gw of gws) {
        assert.equal(await metric(gw, "expressgateway_config_revision_applied"), rev);
        assert.equal(await metric(gw, "expressgateway_control_source_up"), 1);
      }
    });

    await t.step("config push refuses an invalid document (exit 2) and writes nothing", async () => {
      const before = (await client.get(KEY)).modRevision;
      const bad = await push(dir, etcd.url, doc("v3", `pool = "missing"`));
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /pool 'missing' is not defined/);
      assert.match(bad.stderr, /refusing to push an invalid config/);
      assert.equal((await client.get(KEY)).modRevision, before);
    });

    await t.step(
      "an invalid revision written past the CLI is rejected by all three; v2 keeps serving",
      async () => {
        const rev = await client.put(KEY, doc("v3", `pool = "missing"`));
        for (const gw of gws) {
          await until(
            "rejection counted",
            async () => (await metric(gw, "expressgateway_config_revision_rejected_total")) === 1,
            5000,
          );
          assert.equal(await body(gw), "v2");
          assert.ok((await metric(gw, "expressgateway_config_revision_applied"))! < rev);
          const line = await gw.waitForLog(/"msg":"config revision rejected/, 1000);
          assert.equal(JSON.parse(line).revision, rev);
          assert.match(JSON.parse(line).error, /pool 'missing' is not defined/);
        }
        await until("fleet shows rejected", async () => {
          const v = await readFleet(client, PREFIX);
          return v.instances.length === 3 && v.instances.every((i) => i.status === "rejected");
        }, 5000);
        const f = await cli(["fleet", "--etcd", etcd.url, "--prefix", PREFIX], `${dir}/none.toml`);
        assert.equal(f.code, 0, f.stderr);
        assert.match(f.stdout, new RegExp(`gw-a +rejected .*refused revision ${rev}: .*pool 'missing'`));
      },
    );

    await t.step("a push based on a stale revision is refused (exit 3) and writes nothing", async () => {
      const read = (await client.get(KEY)).modRevision;
      // Someone else pushes between our read and our write.
      let other = await push(dir, etcd.url, doc("v4"));
      assert.equal(other.code, 0, other.stderr);
      const now = (await client.get(KEY)).modRevision;
      assert.ok(now > read);
      other = await push(dir, etcd.url, doc("v5-stale"), ["--if-revision", String(read)]);
      assert.equal(other.code, 3, other.stderr);
      assert.match(other.stderr, /config push refused \(stale\).*is at revision \d+, not \d+/);
      const after = await client.get(KEY);
      assert.equal(after.modRevision, now);
      assert.match(after.value!, /v4/);
      // `config get` shows what is there and the revision to base the next edit on.
      const got = await cli(["config", "get", "--etcd", etcd.url, "--prefix", PREFIX], `${dir}/none.toml`);
      assert.equal(got.code, 0, got.stderr);
      assert.equal(got.stdout, after.value);
      assert.equal(got.stderr, `# ${KEY} revision ${now}\n`);
      // The same compare-and-swap, directly: the expected revision no longer matches.
      const cas = await client.putIfModRevision(KEY, doc("v5-stale"), read);
      assert.equal(cas.succeeded, false);
      assert.equal(cas.currentModRevision, now);
      for (const gw of gws) await until("v4", async () => (await body(gw)) === "v4", 5000);
    });

    await t.step(
      "etcd killed and restarted under traffic: no request fails, the next push lands",
      async () => {
        let ok = 0;
        const failures: string[] = [];
        let running = true;
        const traffic = Promise.all(gws.map(async (gw) => {
          while (running) {
            try {
              const res = await fetch(gw.url("web", "/"));
              const text = await res.text();
              if (res.status === 200 && text.startsWith("v")) ok++;
              else failures.push(`${res.status} ${text}`);
            } catch (e) {
              failures.push(String(e));
            }
          }
        }));
        try {
          const restartsBefore = await Promise.all(
            gws.map(async (gw) => await metric(gw, "expressgateway_control_watch_restarts_total") ?? 0),
          );
          await etcd.kill();
          for (const gw of gws) {
            await until(
              "source down",
              async () => (await metric(gw, "expressgateway_control_source_up")) === 0,
              5000,
            );
          }
          await new Promise((r) => setTimeout(r, 500));
          await etcd.restart();
          const slowest = await pushAndConverge(dir, etcd.url, gws, "v6", 10_000);
          console.log(`after the etcd restart, converged on v6 in ${slowest.toFixed(0)} ms`);
          for (const [i, gw] of gws.entries()) {
            // The push may land through the re-read that precedes the new watch: wait for the watch.
            await until(
              "watch re-established",
              async () =>
                (await metric(gw, "expressgateway_control_source_up")) === 1 &&
                (await metric(gw, "expressgateway_control_watch_restarts_total"))! > restartsBefore[i],
              5000,
            );
          }
        } finally {
          running = false;
          await traffic;
        }
        assert.deepEqual(failures.slice(0, 5), []);
        assert.ok(ok > 30, `only ${ok} requests went through`);
        console.log(`${ok} requests during the etcd restart, 0 failed`);
      },
    );

    await t.step(
      "fleet lists the three and marks a stalled one behind; a dead one leaves with its lease",
      async () => {
        const [a, b, c] = gws;
        c.signal("SIGSTOP");
        try {
          const r = await push(dir, etcd.url, doc("v7"));
          assert.equal(r.code, 0, r.stderr);
          for (const gw of [a, b]) await until("v7", async () => (await body(gw)) === "v7", 5000);
          const f = await cli(["fleet", "--etcd", etcd.url, "--prefix", PREFIX], `${dir}/none.toml`);
          assert.equal(f.code, 0, f.stderr);
          const rev = (await client.get(KEY)).modRevision;
          assert.match(f.stdout, new RegExp(`^config revision ${rev} .*3 instance\\(s\\)`, "m"));
          assert.match(f.stdout, new RegExp(`^gw-a +current +${rev} `, "m"));
          assert.match(f.stdout, new RegExp(`^gw-b +current +${rev} `, "m"));
          assert.match(f.stdout, /^gw-c +behind +\d+ /m);
        } finally {
          c.signal("SIGCONT");
        }
        // Resumed, it reads the buffered watch events and catches up.
        await until("gw-c catches up", async () => (await body(c)) === "v7", 5000);
        await until("fleet all current", async () => {
          const v = await readFleet(client, PREFIX);
          return v.instances.length === 3 && v.instances.every((i) => i.status === "current");
        }, 5000);
        // Killed without a chance to revoke: it disappears when its 5 s lease expires.
        c.signal("SIGKILL");
        await c.stop();
        gws.pop();
        const gone = await until("gw-c's lease to expire", async () => {
          const v = await readFleet(client, PREFIX);
          return v.instances.map((i) => i.id).join(",") === "gw-a,gw-b";
        }, 10_000);
        console.log(`killed instance left the fleet list after ${gone.toFixed(0)} ms`);
        // Stopped cleanly: it revokes its lease and leaves at once.
        assert.equal(await b.stop(), 0);
        gws.pop();
        assert.deepEqual((await readFleet(client, PREFIX)).instances.map((i) => i.id), ["gw-a"]);
      },
    );
  } finally {
    await Promise.all(gws.map((gw) => gw.stop()));
    client.close();
    await etcd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("etcd: boot from the cached copy when etcd is down; fail clearly without one", async () => {
  const etcd = await startEtcd();
  const dir = await Deno.makeTempDir({ prefix: "eg-etcd-test-" });
  const cache = `${dir}/cache.toml`;
  const gws: GatewayProcess[] = [];
  try {
    let r = await push(dir, etcd.url, doc("cached-v1"));
    assert.equal(r.code, 0, r.stderr);
    const first = await startGateway(bootstrap(etcd.url, "gw-cache", cache));
    gws.push(first);
    assert.equal(await body(first), "cached-v1");
    await until("cache written", async () => (await Deno.readTextFile(cache)).includes("cached-v1"), 5000);
    const rev = Number(/revision=(\d+)/.exec(await Deno.readTextFile(cache))![1]);
    assert.equal(await first.stop(), 0);
    gws.pop();

    await etcd.kill();
    const second = await startGateway(bootstrap(etcd.url, "gw-cache", cache));
    gws.push(second);
    assert.equal(await body(second), "cached-v1");
    const line = JSON.parse(await second.waitForLog(/"msg":"starting from the cached config"/, 1000));
    assert.match(line.reason, /etcd unreachable at boot/);
    assert.equal(line.revision, rev);
    assert.equal(await metric(second, "expressgateway_config_revision_applied"), rev);
    assert.equal(await metric(second, "expressgateway_control_source_up"), 0);

    // No cache: exit 1 with the reason.
    const noCache = await startGateway(bootstrap(etcd.url, "gw-none", `${dir}/absent.toml`), {
      noWait: true,
    });
    assert.equal(await exitCode(noCache), 1);
    assert.match(noCache.logs(), /etcd unreachable at boot: .*; no cached config at .*absent\.toml/);

    // etcd comes back: the cache-booted gateway catches up with the next push.
    await etcd.restart();
    r = await push(dir, etcd.url, doc("cached-v2"));
    assert.equal(r.code, 0, r.stderr);
    await until("catch up after etcd returns", async () => (await body(second)) === "cached-v2", 10_000);
    // Written right after the apply (the body changes first): wait for it, bounded.
    await until("cache rewritten", async () => /cached-v2/.test(await Deno.readTextFile(cache)), 5000);

    // An invalid document in etcd at boot with no cache: exit 2, the problem on one line.
    const client = new EtcdClient({ endpoints: [etcd.url] });
    try {
      await client.put(KEY, doc("x", `pool = "missing"`));
    } finally {
      client.close();
    }
    const invalid = await startGateway(bootstrap(etcd.url, "gw-invalid"), { noWait: true });
    assert.equal(await exitCode(invalid), 2);
    assert.match(invalid.logs(), /etcd:\/eg-test\/config@\d+.*pool 'missing' is not defined/);
    assert.match(invalid.logs(), /is invalid and no control.cache_file configured/);
    // With the cache, the same boot starts from the last good copy.
    const fallback = await startGateway(bootstrap(etcd.url, "gw-fallback", cache));
    gws.push(fallback);
    assert.equal(await body(fallback), "cached-v2");
    assert.equal(await metric(fallback, "expressgateway_config_revision_rejected_total"), 1);
  } finally {
    await Promise.all(gws.map((gw) => gw.stop()));
    await etcd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("etcd: with auth enabled, the gateway and the CLI log in with [control] credentials", async () => {
  const etcd = await startEtcd();
  const dir = await Deno.makeTempDir({ prefix: "eg-etcd-test-" });
  const gws: GatewayProcess[] = [];
  try {
    // A user that may touch only the test prefix, then auth on (root must exist first).
    const api = async (path: string, body: unknown) => {
      const res = await fetch(`${etcd.url}/v3/${path}`, { method: "POST", body: JSON.stringify(body) });
      assert.equal(res.status, 200, `${path}: ${await res.clone().text()}`);
      await res.body?.cancel();
    };
    await api("auth/user/add", { name: "root", password: "rootpw" });
    await api("auth/user/grant", { user: "root", role: "root" });
    await api("auth/role/add", { name: "gw" });
    await api("auth/role/grant", {
      name: "gw",
      perm: { permType: "READWRITE", key: btoa(PREFIX), range_end: btoa(PREFIX.slice(0, -1) + "u") },
    });
    await api("auth/user/add", { name: "gw", password: "gw secret" });
    await api("auth/user/grant", { user: "gw", role: "gw" });
    await api("auth/enable", {});

    const creds = `username = "gw"\npassword = "gw secret"`;
    const boot = `${dir}/boot.toml`;
    await Deno.writeTextFile(boot, bootstrap(etcd.url, "gw-auth", undefined, creds), { mode: 0o600 });
    const file = `${dir}/v1.toml`;
    await Deno.writeTextFile(file, doc("auth-v1"));

    const anon = await cli(["config", "push", file, "--etcd", etcd.url, "--prefix", PREFIX], file);
    assert.equal(anon.code, 1, anon.stderr);
    assert.match(anon.stderr, /user name is empty/);

    const pushed = await cli(["config", "push", file, "--control", boot], boot);
    assert.equal(pushed.code, 0, pushed.stderr);

    const gw = await startGateway(bootstrap(etcd.url, "gw-auth", undefined, creds));
    gws.push(gw);
    assert.equal(await body(gw), "auth-v1");
    // The harness wrote that bootstrap with mode 644: the password gets a warning, not a refusal.
    assert.match(gw.logs(), /control\.password: .*readable by group or others; chmod 600 it/);

    await Deno.writeTextFile(file, doc("auth-v2"));
    const again = await cli(["config", "push", file, "--control", boot], boot);
    assert.equal(again.code, 0, again.stderr);
    await until("auth-v2 through the authenticated watch", async () => (await body(gw)) === "auth-v2", 5000);
    const f = await cli(["fleet", "--control", boot], boot);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /^gw-auth +current /m);

    const wrong = await startGateway(
      bootstrap(etcd.url, "gw-wrong", undefined, `username = "gw"\npassword = "nope"`),
      { noWait: true },
    );
    assert.equal(await exitCode(wrong), 1);
    assert.match(
      wrong.logs(),
      /expressgateway: etcd refused the boot read: etcdserver: authentication failed/,
    );
  } finally {
    await Promise.all(gws.map((gw) => gw.stop()));
    await etcd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("control: the file source with watch_file reloads when the file changes", async () => {
  const watched = (b: string) => `${doc(b)}\n[control]\nwatch_file = true\n`;
  const gw = await startGateway(watched("file-v1"));
  try {
    assert.equal(await body(gw), "file-v1");
    await gw.writeConfig(watched("file-v2"));
    await until("file-v2", async () => (await body(gw)) === "file-v2", 5000);
    // An invalid edit is refused like an invalid SIGHUP: the last good config keeps serving.
    await gw.writeConfig(
      watched("file-v3").replace(`respond = { status = 200, body = "file-v3" }`, `pool = "x"`),
    );
    await gw.waitForLog(/"msg":"config reload rejected/, 5000);
    assert.equal(await body(gw), "file-v2");
    // The control table itself is chosen at boot: changing it is logged as needing a restart.
    await gw.writeConfig(
      `${doc("file-v4")}\n[control]\nwatch_file = true\nendpoints = ["http://127.0.0.1:1"]\n`,
    );
    await until("file-v4", async () => (await body(gw)) === "file-v4", 5000);
    await gw.waitForLog(/"change":"control \(config source settings\)"/, 2000);
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});

Deno.test("etcd: over TLS with a client certificate ([control.tls])", async () => {
  const pki = await Deno.makeTempDir({ prefix: "eg-etcd-pki-" });
  const dir = await Deno.makeTempDir({ prefix: "eg-etcd-test-" });
  let etcd: Awaited<ReturnType<typeof startEtcd>> | undefined;
  const gws: GatewayProcess[] = [];
  try {
    const files = await makeEtcdPki(pki);
    etcd = await startEtcd({ tls: files });
    assert.match(etcd.url, /^https:/);
    const tls =
      `[control.tls]\nca = "${files.ca}"\ncert = "${files.clientCert}"\nkey = "${files.clientKey}"\n`;
    const boot = `${dir}/boot.toml`;
    await Deno.writeTextFile(boot, bootstrap(etcd.url, "gw-tls", undefined, tls));
    const file = `${dir}/v1.toml`;
    await Deno.writeTextFile(file, doc("tls-v1"));
    // Without a client certificate the server refuses the handshake: nothing is written.
    const noCert = await cli(["config", "push", file, "--etcd", etcd.url, "--prefix", PREFIX], file);
    assert.equal(noCert.code, 1, noCert.stderr);
    assert.match(noCert.stderr, /no etcd endpoint answered/);
    const pushed = await cli(["config", "push", file, "--control", boot], boot);
    assert.equal(pushed.code, 0, pushed.stderr);
    const gw = await startGateway(bootstrap(etcd.url, "gw-tls", undefined, tls));
    gws.push(gw);
    assert.equal(await body(gw), "tls-v1");
    await Deno.writeTextFile(file, doc("tls-v2"));
    const again = await cli(["config", "push", file, "--control", boot], boot);
    assert.equal(again.code, 0, again.stderr);
    await until("tls-v2 through the TLS watch", async () => (await body(gw)) === "tls-v2", 5000);
  } finally {
    await Promise.all(gws.map((gw) => gw.stop()));
    await etcd?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(pki, { recursive: true }).catch(() => {});
  }
});

Deno.test("etcd: a document's certificate files come from control.cert_dirs; SIGHUP retries a refused revision", async () => {
  const etcd = await startEtcd();
  const dir = await Deno.makeTempDir({ prefix: "eg-etcd-test-" });
  const certs = await Deno.makeTempDir({ prefix: "eg-etcd-certs-" });
  const gws: GatewayProcess[] = [];
  try {
    let r = await push(dir, etcd.url, doc("plain-v1"));
    assert.equal(r.code, 0, r.stderr);
    const gw = await startGateway(bootstrap(etcd.url, "gw-certs", undefined, `cert_dirs = ["${certs}"]`));
    gws.push(gw);
    assert.equal(await body(gw), "plain-v1");

    // A pool whose backend CA is not on this host yet: config push cannot know (it skips file
    // checks, the paths are the gateways'), the gateway refuses it and keeps plain-v1.
    const withCa = `${doc("ca-v2")}
[[pools]]
name = "secure"
  [[pools.backends]]
  address = "127.0.0.1:9"
  [pools.backends.tls]
  ca = "${certs}/ca.pem"
`;
    r = await push(dir, etcd.url, withCa);
    assert.equal(r.code, 0, r.stderr);
    await until(
      "refused",
      async () => (await metric(gw, "expressgateway_config_revision_rejected_total")) === 1,
      5000,
    );
    assert.equal(await body(gw), "plain-v1");
    assert.match(gw.logs(), /"msg":"config revision rejected.*ca\.pem.*no such file/);

    // The file arrives; SIGHUP re-reads the key and applies the revision it refused before.
    await Deno.copyFile(`${ROOT}config/examples/certs/localhost.pem`, `${certs}/ca.pem`);
    gw.signal("SIGHUP");
    await until("ca-v2 after SIGHUP", async () => (await body(gw)) === "ca-v2", 5000);
    const client = new EtcdClient({ endpoints: [etcd.url] });
    try {
      assert.equal(
        await metric(gw, "expressgateway_config_revision_applied"),
        (await client.get(KEY)).modRevision,
      );
    } finally {
      client.close();
    }
  } finally {
    await Promise.all(gws.map((gw) => gw.stop()));
    await etcd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(certs, { recursive: true }).catch(() => {});
  }
});
