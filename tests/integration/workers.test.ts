/**
 * Every core: two data-plane workers sharing the listeners with reusePort. Both take
 * connections; a reload under load reaches both with no failed request; a killed worker loses
 * only its in-flight requests and comes back, and what it held leaves the process-wide books;
 * caps stay global; drain exits 0.
 */
import assert from "node:assert/strict";
import { type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { startOrigin } from "../helpers/origin.ts";
import { rawExchange } from "../helpers/run.ts";
import { assertSettled } from "../helpers/settled.ts";

function config(body: string, backend: string, extra = ""): string {
  return `
[runtime]
workers = 2
${extra}

[observability]
admin_bind = "127.0.0.1:0"
access_log = false

[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  path_prefix = "/fixed"
  respond = { status = 200, body = "${body}" }
  [[listeners.routes]]
  pool = "app"

[[pools]]
name = "app"
  [[pools.backends]]
  address = "${backend}"
`;
}

/** One request on its own connection, so the kernel spreads them over the workers. */
async function fresh(gw: GatewayProcess, path: string): Promise<{ status: number; body: string }> {
  // A connection the kernel queued for a worker that is killed is reset: a failed request (0).
  const text = await rawExchange(
    gw.ports.web,
    `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    5000,
  ).catch(() => "");
  const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
  return { status: m ? Number(m[1]) : 0, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
}

async function perWorker(gw: GatewayProcess): Promise<Record<string, number>> {
  const text = await (await fetch(gw.admin("/metrics"))).text();
  const out: Record<string, number> = {};
  for (const l of text.split("\n")) {
    const m = /^expressgateway_worker_connections_total\{worker="(\d+)"\} (\d+)/.exec(l);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

async function metric(gw: GatewayProcess, name: string): Promise<number> {
  const text = await (await fetch(gw.admin("/metrics"))).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : NaN;
}

Deno.test("two workers share the listener and both take connections", async () => {
  const origin = await startOrigin("o");
  const gw = await startGateway(config("v1", origin.address));
  try {
    assert.match(gw.logs(), /"workers":2/);
    for (let i = 0; i < 60; i++) assert.equal((await fresh(gw, "/fixed")).status, 200);
    const counts = await perWorker(gw);
    assert.ok(counts["0"] > 0 && counts["1"] > 0, `both workers served: ${JSON.stringify(counts)}`);
    assert.equal(counts["0"] + counts["1"], 60);
    assert.equal(await metric(gw, "expressgateway_workers"), 2);
  } finally {
    assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
});

Deno.test("a reload under load changes every worker's routing with zero failed requests", async () => {
  const origin = await startOrigin("o");
  const gw = await startGateway(config("v1", origin.address));
  try {
    let stop = false;
    const results: Array<{ status: number; body: string }> = [];
    const load = (async () => {
      for (let i = 0; i < 2000 && !stop; i++) results.push(await fresh(gw, "/fixed"));
    })();
    await new Promise((r) => setTimeout(r, 300));
    await gw.writeConfig(config("v2", origin.address));
    gw.signal("SIGHUP");
    await gw.waitForLog(/"msg":"config reloaded"/);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;
    assert.ok(results.length > 10);
    assert.deepEqual(results.filter((r) => r.status !== 200), [], "no failed request during the reload");
    // After the reload every worker answers v2.
    const after = [];
    for (let i = 0; i < 40; i++) after.push((await fresh(gw, "/fixed")).body);
    assert.deepEqual([...new Set(after)], ["v2"]);
    const counts = await perWorker(gw);
    assert.ok(counts["0"] > 0 && counts["1"] > 0);
  } finally {
    assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
});

Deno.test("a killed worker loses only its in-flight requests and comes back", async () => {
  const origin = await startOrigin("o");
  const gw = await startGateway(config("v1", origin.address));
  try {
    let stop = false;
    const statuses: number[] = [];
    const load = (async () => {
      for (let i = 0; i < 3000 && !stop; i++) statuses.push((await fresh(gw, "/")).status);
    })();
    await new Promise((r) => setTimeout(r, 300));
    const r = await fetch(gw.admin("/workers/1/restart"), { method: "POST" });
    assert.equal(r.status, 202);
    await r.text();
    await gw.waitForLog(/"msg":"data-plane worker restarted"/);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await load;
    const failed = statuses.filter((s) => s !== 200).length;
    assert.ok(failed <= 1, `only the request in flight on the killed worker may fail (failed ${failed})`);
    assert.equal(await metric(gw, "expressgateway_worker_restarts_total"), 1);
    const before = await perWorker(gw);
    for (let i = 0; i < 60; i++) assert.equal((await fresh(gw, "/fixed")).status, 200);
    const after = await perWorker(gw);
    assert.ok(
      (after["1"] ?? 0) > 0,
      `the restarted worker takes connections again: ${JSON.stringify({ before, after })}`,
    );
  } finally {
    assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
});

Deno.test("a worker killed with requests in flight leaves nothing counted: in-flight, connections, upstream pools", async () => {
  const origin = await startOrigin("o");
  const gw = await startGateway(config("v1", origin.address));
  try {
    // Held requests on fresh connections: the kernel spreads them over both workers.
    const held = Array.from(
      { length: 16 },
      () =>
        rawExchange(gw.ports.web, `GET /slow?ms=2000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, 5000)
          .catch(() => ""),
    );
    const inFlight = () => metric(gw, "expressgateway_in_flight_requests");
    for (let i = 0; i < 50 && await inFlight() < 16; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await inFlight(), 16);
    const r = await fetch(gw.admin("/workers/1/restart"), { method: "POST" });
    assert.equal(r.status, 202);
    await r.text();
    await gw.waitForLog(/"msg":"data-plane worker restarted"/);
    const answers = await Promise.all(held);
    const ok = answers.filter((a) => a.startsWith("HTTP/1.1 200")).length;
    const perW = await perWorker(gw);
    // Worker 0's requests were answered; worker 1's were lost with it (their connections closed).
    assert.equal(ok, perW["0"], `answered ${ok}, worker 0 took ${JSON.stringify(perW)}`);
    assert.ok(ok < 16, "some of the held requests were on the killed worker");
    await assertSettled(gw);
  } finally {
    assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
});

Deno.test("caps are global across workers: max_in_flight = 1 admits one request at a time", async () => {
  const origin = await startOrigin("o");
  const gw = await startGateway(config("v1", origin.address, "max_in_flight = 1"));
  try {
    const results = await Promise.all(Array.from({ length: 6 }, () => fresh(gw, "/slow?ms=600")));
    const ok = results.filter((r) => r.status === 200).length;
    const refused = results.filter((r) => r.status === 503).length;
    assert.equal(ok, 1, `exactly one admitted: ${results.map((r) => r.status)}`);
    assert.equal(refused, 5);
  } finally {
    assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
});
