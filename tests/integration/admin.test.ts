/**
 * The admin plane of a real gateway process: probes, /metrics (content type, promtool-clean
 * after real traffic), bearer-token protection, and the startup refusal of a public admin
 * bind without a token hash.
 */

import assert from "node:assert/strict";
import { basicConfig, poolConfig, startGateway, writeTempConfig } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { run } from "../helpers/run.ts";
import { gatewayFlags } from "../../scripts/flags.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

async function get(url: string, headers: Record<string, string> = {}) {
  const r = await fetch(url, { headers });
  return { status: r.status, headers: r.headers, body: await r.text() };
}

function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const sp = line.lastIndexOf(" ");
    if (line.slice(0, sp) === series) return Number(line.slice(sp + 1));
  }
  return undefined;
}

async function sha256Hex(s: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(s));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

const ROUTES = `
  [[listeners.routes]]
  path_prefix = "/fixed"
  respond = { status = 200, body = "fixed\\n" }
  [[listeners.routes]]
  path_prefix = "/dead/"
  pool = "dead"
  [[listeners.routes]]
  path_prefix = "/status/"
  pool = "app"
  [[listeners.routes]]
  path_prefix = "/sha256"
  pool = "app"
  [[listeners.routes]]
  path_prefix = "/x"
  pool = "app"
`;

Deno.test("admin: probes, /metrics content type, and promtool-clean exposition after real traffic", async () => {
  const a = await startOrigin("a");
  const gw = await startGateway(basicConfig({
    routes: ROUTES,
    // Port 1 on loopback refuses connections: upstream errors and a 502 for the metrics.
    pools: poolConfig("app", [a.address]) + poolConfig("dead", ["127.0.0.1:1"]),
  }));
  try {
    for (const [path, code] of [["/livez", 200], ["/healthz", 200], ["/readyz", 200], ["/startupz", 200]]) {
      const r = await get(gw.admin(path as string));
      assert.equal(r.status, code, `${path}: ${r.body}`);
    }
    assert.equal((await get(gw.admin("/nope"))).status, 404);
    const post = await fetch(gw.admin("/metrics"), { method: "POST", body: "x" });
    await post.body?.cancel();
    assert.equal(post.status, 405);

    // Traffic of every kind: proxied 2xx/4xx, a gateway 404 (no route), a fixed response,
    // an upstream failure (502), a POST with a body.
    const statuses: number[] = [];
    for (const p of ["/x", "/status/404", "/status/500", "/nope", "/fixed", "/dead/x"]) {
      statuses.push((await get(gw.url("web", p))).status);
    }
    const posted = await fetch(gw.url("web", "/sha256"), { method: "POST", body: "hello" });
    assert.equal((await posted.json()).bytes, 5);
    // A refused connect on the only backend: 502, or 503 once the retry finds no other backend.
    assert.ok([502, 503].includes(statuses.pop()!));
    assert.deepEqual(statuses, [200, 404, 500, 404, 200]);

    const m = await get(gw.admin("/metrics"));
    assert.equal(m.status, 200);
    assert.match(m.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
    const text = m.body;
    const req = (route: string, pool: string, status: string) =>
      sample(
        text,
        `expressgateway_requests_total{listener="web",route="${route}",pool="${pool}",status="${status}"}`,
      );
    assert.equal(req("web#4", "app", "2xx"), 1);
    assert.equal(req("web#3", "app", "2xx"), 1);
    assert.equal(req("web#2", "app", "4xx"), 1);
    assert.equal(req("web#2", "app", "5xx"), 1);
    assert.equal(req("none", "none", "4xx"), 1);
    assert.equal(req("web#0", "none", "2xx"), 1);
    assert.equal(req("web#1", "dead", "5xx"), 1);
    assert.ok(
      (sample(
        text,
        'expressgateway_upstream_errors_total{pool="dead",backend="127.0.0.1:1",kind="connect"}',
      ) ?? 0) >= 1,
    );
    assert.equal(sample(text, 'expressgateway_request_duration_seconds_count{listener="web"}'), 7);
    assert.equal(sample(text, "expressgateway_config_reloads_total"), 0);
    assert.equal(sample(text, "expressgateway_config_generation"), 1);
    // HELP and TYPE for every family, each once.
    const types = text.split("\n").filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]);
    const helps = text.split("\n").filter((l) => l.startsWith("# HELP ")).map((l) => l.split(" ")[2]);
    assert.deepEqual(helps, types);
    assert.equal(new Set(types).size, types.length);

    const pt = await run("promtool", ["check", "metrics"], { stdin: new TextEncoder().encode(text) });
    assert.equal(pt.code, 0, `promtool failed:\n${pt.stdout}${pt.stderr}\n---\n${text}`);
    assert.equal((pt.stdout + pt.stderr).trim(), "", "promtool lint warnings");
  } finally {
    assert.equal(await gw.stop(), 0);
    await a.stop();
  }
});

Deno.test("admin: api_token_hash gates /metrics behind a bearer token; probes stay open", async () => {
  const hash = await sha256Hex("s3cret");
  const gw = await startGateway(basicConfig({
    routes: `
  [[listeners.routes]]
  respond = { status = 200, body = "ok" }
`,
    extra: `
[admin]
api_token_hash = "sha256:${hash}"
`,
  }));
  try {
    const none = await get(gw.admin("/metrics"));
    assert.equal(none.status, 401);
    assert.match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
    assert.doesNotMatch(none.body, /expressgateway_/);
    for (
      const auth of [
        "Bearer wrong",
        "Bearer s3cret2",
        "Bearer s3cre",
        "Basic czNjcmV0",
        "s3cret",
        "Bearer",
        "Bearer s3cret extra",
        `Bearer sha256:${hash}`,
      ]
    ) {
      assert.equal((await get(gw.admin("/metrics"), { authorization: auth })).status, 401, auth);
    }
    const ok = await get(gw.admin("/metrics"), { authorization: "Bearer s3cret" });
    assert.equal(ok.status, 200);
    assert.match(ok.body, /# TYPE expressgateway_requests_total counter/);
    // The scheme is case-insensitive (RFC 7235).
    assert.equal((await get(gw.admin("/metrics"), { authorization: "bearer s3cret" })).status, 200);
    for (const p of ["/livez", "/healthz", "/readyz", "/startupz"]) {
      assert.equal((await get(gw.admin(p))).status, 200, p);
    }
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});

Deno.test("admin: a non-loopback admin_bind without api_token_hash is refused at startup with exit 2", async () => {
  const { dir, configPath } = await writeTempConfig(`
[observability]
admin_bind = "0.0.0.0:0"

[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  respond = { status = 200, body = "ok" }
`);
  try {
    const r = await run(Deno.execPath(), [
      "run",
      "--no-prompt",
      ...gatewayFlags(configPath),
      `${ROOT}main.ts`,
      configPath,
    ], { timeoutMs: 30_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /admin\.api_token_hash/);
    assert.match(r.stderr, /admin_bind 0\.0\.0\.0:0 is not loopback, so admin\.api_token_hash is required/);
    assert.doesNotMatch(r.stderr, /gateway ready|Uncaught|\n\s+at /);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("admin: the token rotates by reload, but a reload cannot drop it while a public admin bind stays live", async () => {
  const cfg = (adminBind: string, hash?: string) =>
    basicConfig({
      routes: `
  [[listeners.routes]]
  respond = { status = 200, body = "ok" }
`,
      extra: "",
    }).replace('admin_bind = "127.0.0.1:0"', `admin_bind = "${adminBind}"`) +
    (hash ? `\n[admin]\napi_token_hash = "sha256:${hash}"\n` : "");
  // Bound on all interfaces (so not loopback); the test still talks to 127.0.0.1 only.
  const gw = await startGateway(cfg("0.0.0.0:0", await sha256Hex("s3cret")));
  const metrics = async (token?: string) =>
    (await get(gw.admin("/metrics"), token ? { authorization: `Bearer ${token}` } : {})).status;
  try {
    assert.equal(await metrics(), 401);
    assert.equal(await metrics("s3cret"), 200);

    // Rotation: the new token works at once, the old one no longer does.
    await gw.writeConfig(cfg("0.0.0.0:0", await sha256Hex("n3w")));
    gw.signal("SIGHUP");
    await gw.waitForLog(/"msg":"config reloaded"/);
    assert.equal(await metrics("s3cret"), 401);
    assert.equal(await metrics("n3w"), 200);

    // Moving admin to loopback without a hash is valid for the *new* bind, but the bind change
    // needs a restart: until then the public listener keeps requiring the token.
    await gw.writeConfig(cfg("127.0.0.1:0"));
    gw.signal("SIGHUP");
    const skip = JSON.parse(await gw.waitForLog(/api_token_hash removal/));
    assert.equal(skip.msg, "reload: change needs a restart; skipped");
    await gw.waitForLog(/"generation":3/);
    assert.equal(await metrics(), 401);
    assert.equal(await metrics("n3w"), 200);
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});
