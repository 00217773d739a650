/**
 * The pure parts of the control plane: base64 and prefix ranges for etcd's JSON gateway, the
 * reconnect backoff, the cache file (atomic, header round trip), fleet status, and the
 * bootstrap file's validation (what an etcd-mode file may hold, with positions).
 */

import assert from "node:assert/strict";
import { ConfigError, type ConfigProblem } from "../../../src/config/errors.ts";
import { endpointProblem, loadBootstrap } from "../../../src/control/bootstrap.ts";
import { formatCache, readCache, writeCache } from "../../../src/control/cache.ts";
import { controlCli } from "../../../src/control/cli.ts";
import { fromBase64, prefixEnd, toBase64 } from "../../../src/control/etcd_client.ts";
import { defaultInstanceId } from "../../../src/control/etcd_source.ts";
import {
  type FleetView,
  formatFleet,
  type InstanceRecord,
  instanceStatus,
} from "../../../src/control/fleet.ts";
import { backoffMs } from "../../../src/control/source.ts";

Deno.test("base64 of UTF-8 keys and values round-trips; prefixEnd bumps the last byte", () => {
  for (const s of ["", "/expressgateway/config", 'body = "héllo ✓"\n', "\u0000\u00ff"]) {
    assert.equal(fromBase64(toBase64(s)), s);
  }
  assert.equal(toBase64("/eg/"), btoa("/eg/"));
  assert.equal(fromBase64(prefixEnd("/eg/instances/")), "/eg/instances0");
  assert.equal(fromBase64(prefixEnd("a")), "b");
  // A trailing 0xff byte is dropped and the one before it bumped (etcd's convention).
  assert.deepEqual(Uint8Array.fromBase64(prefixEnd("a\u00ff")), new Uint8Array([0x61, 0xc3, 0xc0]));
  assert.equal(fromBase64(undefined), "");
});

Deno.test("backoff doubles from 100 ms, is jittered to 50–100 % and capped at 3 s", () => {
  assert.equal(backoffMs(1, () => 1), 100);
  assert.equal(backoffMs(1, () => 0), 50);
  assert.equal(backoffMs(3, () => 1), 400);
  assert.equal(backoffMs(6, () => 1), 3000);
  assert.equal(backoffMs(1000, () => 1), 3000);
  assert.equal(backoffMs(0, () => 1), 100);
});

Deno.test("cache: atomic write, header round trip, missing and damaged files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-cache-" });
  try {
    const path = `${dir}/cache.toml`;
    assert.equal(await readCache(path), undefined);
    const text = '[[listeners]]\nname = "web"\n';
    await writeCache(path, { text, revision: 42, key: "/eg/config" });
    assert.deepEqual(await readCache(path), { text, revision: 42, key: "/eg/config" });
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    await writeCache(path, { text: "x = 1\n", revision: 43, key: "/eg/config" });
    assert.equal((await readCache(path))!.revision, 43);
    // Only the cache itself is left: the temp file was renamed over it.
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["cache.toml"]);
    assert.match(
      formatCache({ text: "", revision: 1, key: "/k" }),
      /^# expressgateway config cache: key=\/k revision=1 /,
    );
    await Deno.writeTextFile(path, "listeners = []\n");
    await assert.rejects(readCache(path), /no expressgateway header line/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fleet status: current by revision or digest, rejected, behind; the table marks each", () => {
  const base: InstanceRecord = {
    id: "a",
    applied_revision: 7,
    digest: "d7",
    started_at: "t",
    version: "0.1.0",
    origin: "etcd",
  };
  assert.equal(instanceStatus(base, 7, "d7"), "current");
  assert.equal(instanceStatus({ ...base, applied_revision: 5 }, 7, "d7"), "current"); // same document (cache boot)
  assert.equal(instanceStatus(base, 9, "d9"), "behind");
  assert.equal(instanceStatus({ ...base, rejected_revision: 9 }, 9, "d9"), "rejected");
  assert.equal(instanceStatus({ ...base, rejected_revision: 8 }, 9, "d9"), "behind");
  const view: FleetView = {
    configRevision: 9,
    configDigest: "d9d9d9d9d9d9d9",
    instances: [
      { ...base, id: "gw-a", applied_revision: 9, digest: "d9d9d9d9d9d9d9", status: "current" },
      { ...base, id: "gw-b", status: "behind" },
    ],
  };
  const out = formatFleet(view);
  assert.match(out, /^config revision 9 \(sha256 d9d9d9d9d9d9\), 2 instance\(s\)$/m);
  assert.match(out, /^gw-a +current +9 /m);
  assert.match(out, /^gw-b +behind +7 /m);
});

Deno.test("the default instance id is <hostname>-<pid>", () => {
  assert.match(defaultInstanceId(), new RegExp(`^[A-Za-z0-9_.-]+-${Deno.pid}$`));
});

Deno.test("endpoint URLs: http(s) with host and port only", () => {
  assert.equal(endpointProblem("http://127.0.0.1:2379"), undefined);
  assert.equal(endpointProblem("https://etcd.internal:2379/"), undefined);
  assert.match(
    endpointProblem("127.0.0.1:2379")!,
    /invalid URL "127.0.0.1:2379"; write it as "http:\/\/host:2379"/,
  );
  assert.match(endpointProblem("localhost:2379")!, /only http:\/\/ and https:\/\//);
  assert.match(endpointProblem("not a url")!, /invalid URL/);
  assert.match(endpointProblem("unix:///run/etcd.sock")!, /only http/);
  assert.match(endpointProblem("http://u:p@h:1")!, /credentials go in username\/password/);
  assert.match(endpointProblem("http://h:1/v3")!, /scheme, host and port only/);
});

async function bootProblems(toml: string): Promise<{ problems: ConfigProblem[]; warnings: ConfigProblem[] }> {
  const dir = await Deno.makeTempDir({ prefix: "eg-boot-" });
  const path = `${dir}/boot.toml`;
  await Deno.writeTextFile(path, toml, { mode: 0o600 });
  const warnings: ConfigProblem[] = [];
  try {
    await loadBootstrap(path, warnings);
    return { problems: [], warnings };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { problems: e.problems, warnings };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("bootstrap: an etcd-mode file holds only [control], validated with positions", async () => {
  const dir = await Deno.makeTempDir({ prefix: "eg-boot-" });
  try {
    const path = `${dir}/boot.toml`;
    await Deno.writeTextFile(
      path,
      `[control]\nsource = "etcd"\nendpoints = ["http://10.0.0.1:2379", "https://10.0.0.2:2379"]\n` +
        `prefix = "/prod/eg"\ncache_file = "${dir}/cache.toml"\nlease_ttl = "15s"\n`,
    );
    const b = await loadBootstrap(path);
    assert.equal(b.kind, "etcd");
    if (b.kind !== "etcd") return;
    assert.deepEqual(b.control.endpoints, ["http://10.0.0.1:2379", "https://10.0.0.2:2379"]);
    assert.equal(b.control.prefix, "/prod/eg");
    assert.equal(b.control.lease_ttl, 15_000);
    assert.equal(b.control.request_timeout, 2000);
    assert.equal(b.control.boot_timeout, 5000);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }

  let r = await bootProblems(`[control]\nsource = "etcd"\n\n[[listeners]]\nname = "x"\n`);
  assert.equal(r.problems.length, 1);
  assert.equal(r.problems[0].path, "listeners");
  assert.equal(r.problems[0].line, 4);
  assert.match(r.problems[0].message, /this file may only hold \[control\]/);

  r = await bootProblems(`[control]\nsource = "etcd"\nendpoint = ["http://a:1"]\n`);
  assert.equal(r.problems[0].path, "control.endpoint");
  assert.equal(r.problems[0].line, 3);
  assert.match(r.problems[0].message, /did you mean 'endpoints'\?/);

  r = await bootProblems(`[control]\nsource = "etcd"\nendpoints = ["127.0.0.1:2379"]\nprefix = "/eg/"\n`);
  assert.deepEqual(r.problems.map((p) => [p.path, p.line]), [["control.prefix", 4]]);
  r = await bootProblems(`[control]\nsource = "etcd"\nendpoints = ["127.0.0.1:2379"]\n`);
  assert.deepEqual(r.problems.map((p) => [p.path, p.line]), [["control.endpoints[0]", 3]]);
  assert.match(r.problems[0].message, /write it as "http:\/\/host:2379"/);

  r = await bootProblems(
    `[control]\nsource = "etcd"\nusername = "gw"\ncache_file = "/nonexistent-dir/c.toml"\n`,
  );
  assert.deepEqual(r.problems.map((p) => p.path).sort(), ["control.cache_file", "control.username"]);
  assert.match(
    r.problems.find((p) => p.path === "control.cache_file")!.message,
    /directory \/nonexistent-dir: no such/,
  );

  r = await bootProblems(`[control]\nsource = "etcd"\nlease_ttl = "1s"\n`);
  assert.match(r.problems[0].message, /must be at least 2s/);

  r = await bootProblems(`[control]\nsource = "etcd"\n[control.tls]\ncert = "/x.pem"\n`);
  assert.ok(r.problems.some((p) => p.path === "control.tls" && /cert and key go together/.test(p.message)));

  // Warnings, not errors: no cache, tls on http endpoints.
  r = await bootProblems(`[control]\nsource = "etcd"\n[control.tls]\nca = "/x.pem"\n`);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings.map((w) => w.path).sort(), ["control.cache_file", "control.tls"]);
});

Deno.test("bootstrap: a file-mode config loads whole; etcd-only keys there are warnings", async () => {
  const r = await bootProblems(
    `[control]\ncache_file = "/tmp/c.toml"\n\n[[listeners]]\nname = "w"\nbind = "127.0.0.1:0"\nprotocol = "http"\n` +
      `routes = [{ respond = { status = 204 } }]\n`,
  );
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.warnings.map((w) => [w.path, w.line]), [["control.cache_file", 2]]);
  const missing = await bootProblems(`[control]\nsource = "file"\n`);
  assert.match(missing.problems[0].message, /at least one \[\[listeners\]\] entry is required/);
});

Deno.test("control CLI: not a subcommand → undefined; usage errors → 2 before any network", async () => {
  const quiet = console.error;
  const lines: string[] = [];
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    assert.equal(await controlCli(["gateway.toml"]), undefined);
    assert.equal(await controlCli(["config", "check"]), undefined);
    assert.equal(await controlCli(["fleet"]), 2);
    assert.match(lines.pop()!, /--etcd URL \(or --control FILE\) is required/);
    assert.equal(await controlCli(["config", "push", "--etcd", "http://127.0.0.1:2379"]), 2);
    assert.match(lines.pop()!, /config push wants one FILE/);
    assert.equal(await controlCli(["fleet", "--etcd", "127.0.0.1:2379"]), 2);
    assert.match(lines.pop()!, /--etcd invalid URL "127.0.0.1:2379"/);
    assert.equal(await controlCli(["fleet", "--etcd", "http://h:1", "--prefix", "eg"]), 2);
    assert.equal(await controlCli(["config", "push", "f", "--etcd", "http://h:1", "--if-revision", "x"]), 2);
    assert.equal(await controlCli(["fleet", "--etcd", "http://h:1", "--bogus"]), 2);
    assert.match(lines.pop()!, /unknown option '--bogus'/);
  } finally {
    console.error = quiet;
  }
});
