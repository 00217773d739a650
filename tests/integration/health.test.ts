/**
 * Health checking with real origins and real failures: a killed origin is taken out by active
 * probes and comes back after `rise`, an origin answering 500s is ejected passively, a pool
 * whose backends all fail goes into panic mode (still forwarding), and a reload of another
 * pool leaves this pool's health state alone.
 */
import assert from "node:assert/strict";
import { basicConfig, type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { type Origin, startOrigin } from "../helpers/origin.ts";
import { until } from "../helpers/common.ts";

interface Status {
  pool: string;
  address: string;
  up: boolean;
  reason: string;
  times_ejected: number;
}

async function backends(gw: GatewayProcess): Promise<Status[]> {
  const r = await fetch(gw.admin("/status/backends"));
  return (await r.json()).backends;
}

async function metric(gw: GatewayProcess, name: string, labels: string): Promise<number | undefined> {
  const text = await (await fetch(gw.admin("/metrics"))).text();
  const line = text.split("\n").find((l) =>
    l.startsWith(name + "{") && labels.split(",").every((kv) => l.includes(kv))
  );
  return line ? Number(line.split(" ").pop()) : undefined;
}

async function get(gw: GatewayProcess, path = "/") {
  const r = await fetch(gw.url("web", path));
  const body = await r.text();
  return { status: r.status, origin: r.headers.get("x-origin"), body };
}

function pool(name: string, origins: Origin[], extra: string): string {
  return `
[[pools]]
name = "${name}"
${extra}
${origins.map((o) => `  [[pools.backends]]\n  address = "${o.address}"`).join("\n")}
`;
}

const ACTIVE = `
  [pools.health]
  path = "/healthz"
  interval = "200ms"
  jitter = "50ms"
  timeout = "300ms"
  rise = 2
  fall = 2
`;

Deno.test("active checks: a killed origin stops getting traffic, and returns after rise checks", async () => {
  const origins = [await startOrigin("a"), await startOrigin("b"), await startOrigin("c")];
  const gw = await startGateway(basicConfig({ pools: pool("app", origins, ACTIVE) }));
  try {
    await until("all up", async () => (await backends(gw)).every((b) => b.up));
    const bPort = origins[1].port;
    await origins[1].stop();
    // A steady stream of GETs while b dies: the retry rule covers the window before the
    // probes notice, so no client sees an error.
    const statuses: number[] = [];
    const deadline = Date.now() + 1500;
    while (Date.now() < deadline && statuses.length < 300) statuses.push((await get(gw)).status);
    assert.ok(statuses.length > 0);
    assert.deepEqual(statuses.filter((s) => s !== 200), [], "no client errors while b goes down");
    await until(
      "b down",
      async () => (await backends(gw)).some((b) => b.address.endsWith(`:${bPort}`) && !b.up),
    );
    assert.equal(await metric(gw, "expressgateway_backend_up", `backend="127.0.0.1:${bPort}"`), 0);
    for (let i = 0; i < 30; i++) assert.notEqual((await get(gw)).origin, "b");
    await gw.waitForLog(/"msg":"backend down".*failed 2 active check/);

    origins[1] = await startOrigin("b", bPort);
    await until("b up again", async () => (await backends(gw)).every((b) => b.up));
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add((await get(gw)).origin!);
    assert.ok(seen.has("b"), `b takes traffic again (saw ${[...seen]})`);
    assert.ok((await metric(gw, "expressgateway_health_transitions_total", `to="up"`)) ?? 0 >= 1);
  } finally {
    await gw.stop();
    for (const o of origins) await o.stop();
  }
});

Deno.test("passive: an origin answering 500s is ejected within consecutive_5xx", async () => {
  const origins = [await startOrigin("a"), await startOrigin("b"), await startOrigin("c")];
  const outlier = `
  [pools.outlier]
  consecutive_5xx = 3
  base_ejection_time = "30s"
  max_ejection_percent = 50
`;
  const gw = await startGateway(
    basicConfig({ pools: pool("app", origins, `algorithm = "round_robin"\n${outlier}`) }),
  );
  try {
    await fetch(`http://${origins[0].address}/__mode/fail`).then((r) => r.text());
    let fails = 0;
    for (let i = 0; i < 30; i++) if ((await get(gw)).status === 500) fails++;
    assert.equal(fails, 3, "exactly consecutive_5xx failures reach clients before the ejection");
    assert.equal(
      await metric(gw, "expressgateway_outlier_ejections_total", `backend="${origins[0].address}"`),
      1,
    );
    const a = (await backends(gw)).find((b) => b.address === origins[0].address)!;
    assert.equal(a.up, false);
    assert.match(a.reason, /3 consecutive 5xx/);
    // max_ejection_percent = 50 of 3 backends: a second failing origin is not ejected.
    await fetch(`http://${origins[1].address}/__mode/fail`).then((r) => r.text());
    for (let i = 0; i < 20; i++) await get(gw);
    assert.equal((await backends(gw)).filter((b) => !b.up).length, 1);
  } finally {
    await gw.stop();
    for (const o of origins) await o.stop();
  }
});

Deno.test("panic: when every backend fails checks the pool keeps forwarding and says so", async () => {
  const origins = [await startOrigin("a"), await startOrigin("b"), await startOrigin("c")];
  const gw = await startGateway(
    basicConfig({ pools: pool("app", origins, `panic_threshold = 50\n${ACTIVE}`) }),
  );
  try {
    for (const o of origins) await fetch(`http://${o.address}/__mode/fail`).then((r) => r.text());
    await until("all down", async () => (await backends(gw)).every((b) => !b.up));
    assert.equal(await metric(gw, "expressgateway_pool_panic", `pool="app"`), 1);
    await gw.waitForLog(/pool in panic mode/);
    for (let i = 0; i < 6; i++) {
      const r = await get(gw);
      assert.equal(r.status, 500, "forwarded to an origin (its 500), not a gateway 503");
      assert.ok(r.origin, "answered by an origin");
    }
    for (const o of origins) await fetch(`http://${o.address}/__mode/ok`).then((r) => r.text());
    await until(
      "panic over",
      async () => (await metric(gw, "expressgateway_pool_panic", `pool="app"`)) === 0,
    );
    await gw.waitForLog(/pool left panic mode/);
  } finally {
    await gw.stop();
    for (const o of origins) await o.stop();
  }
});

Deno.test("a reload that changes another pool leaves this pool's health state untouched", async () => {
  const origins = [await startOrigin("a"), await startOrigin("b")];
  const other = await startOrigin("other");
  const routes = `
  [[listeners.routes]]
  path_prefix = "/other"
  pool = "other"
  [[listeners.routes]]
  pool = "app"
`;
  const toml = (otherAlgo: string) =>
    basicConfig({
      routes,
      pools: pool("app", origins, ACTIVE) + pool("other", [other], `algorithm = "${otherAlgo}"`),
    });
  const gw = await startGateway(toml("round_robin"));
  try {
    await fetch(`http://${origins[1].address}/__mode/fail`).then((r) => r.text());
    await until(
      "b down",
      async () => (await backends(gw)).some((b) => b.address === origins[1].address && !b.up),
    );
    await gw.waitForLog(/"msg":"backend down"/);
    const transitionsBefore = gw.logs().split("\n").filter((l) => l.includes('"msg":"backend')).length;
    await gw.writeConfig(toml("least_request"));
    gw.signal("SIGHUP");
    await gw.waitForLog(/"msg":"config reloaded"/);
    const b = (await backends(gw)).find((x) => x.address === origins[1].address)!;
    assert.equal(b.up, false, "still down right after the reload");
    assert.match(b.reason, /failed 2 active check/);
    const transitionsAfter = gw.logs().split("\n").filter((l) => l.includes('"msg":"backend')).length;
    assert.equal(transitionsAfter, transitionsBefore, "no health transition caused by the reload");
  } finally {
    await gw.stop();
    for (const o of [...origins, other]) await o.stop();
  }
});
