/**
 * Slow and greedy clients against the live gateway: slowloris (a head trickled byte by byte),
 * slow POST (a body that stalls), a client that stops reading its response (zero window), idle
 * keep-alive connections, a per-IP connection flood and the global in-flight cap. Each must be cut with the right answer (408 / close / 503) while
 * other clients keep being served, and each must show up in /metrics.
 */

import assert from "node:assert/strict";
import { type GatewayProcess, startGateway } from "../helpers/gateway.ts";
import { assertSettled } from "../helpers/settled.ts";
import { type Origin, startOrigin } from "../helpers/origin.ts";
import { RawClient, rawOnce } from "../unit/h1/raw_client.ts";

async function metric(gw: GatewayProcess, re: RegExp): Promise<number> {
  const body = await (await fetch(gw.admin("/metrics"))).text();
  let sum = 0;
  for (const line of body.split("\n")) {
    if (re.test(line)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function guardedConfig(origin: Origin, extra = ""): string {
  return `
[observability]
admin_bind = "127.0.0.1:0"

${extra ? `[runtime]\n${extra}` : ""}

[[listeners]]
name = "slow"
bind = "127.0.0.1:0"
protocol = "http"
header_timeout = "1s"
body_timeout = "1s"
idle_timeout = "1s"
send_timeout = "1s"
  [[listeners.routes]]
  pool = "app"

[[listeners]]
name = "capped"
bind = "127.0.0.1:0"
protocol = "http"
max_connections_per_ip = 3
  [[listeners.routes]]
  pool = "app"

[[listeners]]
name = "full"
bind = "127.0.0.1:0"
protocol = "http"
max_connections = 2
  [[listeners.routes]]
  pool = "app"

[[pools]]
name = "app"
  [[pools.backends]]
  address = "${origin.address}"
`;
}

/** Sends GET / on fresh connections every ~100 ms until `stop`; returns the statuses seen. */
async function steadyClient(port: number, stop: { done: boolean }): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 200 && !stop.done; i++) {
    const r = await rawOnce(port, `GET /ok${i} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`, {
      timeoutMs: 3000,
    });
    seen.push(r.text.slice(9, 12));
    await sleep(100);
  }
  return seen;
}

Deno.test("slow clients and guards: slowloris, slow POST, idle, per-IP cap, listener cap", async (t) => {
  const origin = await startOrigin("slow-origin");
  let gw: GatewayProcess | undefined;
  try {
    gw = await startGateway(guardedConfig(origin));
    const g = gw;
    const port = g.ports.slow;

    await t.step(
      "slowloris: a head trickled byte by byte → 408 and close; others keep getting 200",
      async () => {
        const before = await metric(g, /^expressgateway_protocol_events_total\{.*event="header_timeout"/);
        const stop = { done: false };
        const others = steadyClient(port, stop);
        const c = await RawClient.connect(port);
        const head =
          "GET /loris HTTP/1.1\r\nHost: h\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        const t0 = performance.now();
        let sent = 0;
        const trickle = (async () => {
          for (; sent < head.length; sent++) {
            try {
              await c.write(head[sent]);
            } catch {
              return; // the gateway closed the connection
            }
            if (c.closed) return;
            await sleep(300);
          }
        })();
        try {
          const res = await c.readToEnd(6000);
          const elapsed = performance.now() - t0;
          assert.ok(res.closed, "slowloris connection still open");
          assert.match(res.text, /^HTTP\/1\.1 408 /);
          assert.ok(elapsed < 4000, `cut after ${Math.round(elapsed)} ms`);
          assert.ok(sent < head.length, "the whole head got through");
        } finally {
          c.close();
          await trickle;
          stop.done = true;
        }
        const seen = await others;
        assert.ok(seen.length >= 5, `other client made ${seen.length} requests`);
        assert.deepEqual([...new Set(seen)], ["200"], `other client saw ${seen}`);
        const after = await metric(g, /^expressgateway_protocol_events_total\{.*event="header_timeout"/);
        assert.equal(after - before, 1);
      },
    );

    await t.step("slowloris on the second request of a keep-alive connection → 408 too", async () => {
      const c = await RawClient.connect(port);
      try {
        await c.write("GET /first HTTP/1.1\r\nHost: h\r\n\r\n");
        assert.equal((await c.readResponse()).status, 200);
        const head = "GET /second HTTP/1.1\r\nHost: h\r\n\r\n";
        let stop = false;
        const trickle = (async () => {
          for (let i = 0; i < head.length && !stop; i++) {
            await c.write(head[i]).catch(() => stop = true);
            await sleep(300);
          }
        })();
        const res = await c.readToEnd(6000);
        stop = true;
        await trickle;
        assert.ok(res.closed);
        assert.match(res.text, /^HTTP\/1\.1 408 /);
      } finally {
        c.close();
      }
    });

    await t.step("slow POST: part of a body then a stall → 408 and close after body_timeout", async () => {
      const before = await metric(g, /^expressgateway_protocol_events_total\{.*event="body_timeout"/);
      const statsBefore = await (await fetch(`http://127.0.0.1:${origin.port}/__stats`)).json();
      const c = await RawClient.connect(port);
      try {
        await c.write("POST /sha256 HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\n" + "z".repeat(100));
        const t0 = performance.now();
        const res = await c.readToEnd(6000);
        assert.ok(res.closed, "slow POST connection still open");
        assert.match(res.text, /^HTTP\/1\.1 408 /);
        assert.ok(performance.now() - t0 < 4000);
      } finally {
        c.close();
      }
      const after = await metric(g, /^expressgateway_protocol_events_total\{.*event="body_timeout"/);
      assert.equal(after - before, 1);
      const statsAfter = await (await fetch(`http://127.0.0.1:${origin.port}/__stats`)).json();
      assert.equal(statsAfter.completed, statsBefore.completed, "origin got the incomplete body as complete");
      // a slow chunked body too
      const c2 = await RawClient.connect(port);
      try {
        await c2.write("POST /sha256 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
        const res = await c2.readToEnd(6000);
        assert.ok(res.closed);
        assert.match(res.text, /^HTTP\/1\.1 408 /);
      } finally {
        c2.close();
      }
    });

    await t.step(
      "a client that stops reading its response is cut after send_timeout, its request and backend connection freed",
      async () => {
        const event = () =>
          metric(g, /^expressgateway_protocol_events_total\{listener="slow",event="send_timeout"/);
        const inFlight = () => metric(g, /^expressgateway_in_flight_requests /);
        const before = await event();
        // 50 MB asked for, nothing read: the socket buffers fill and the gateway's write waits.
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          await c.write(new TextEncoder().encode("GET /bytes/52428800 HTTP/1.1\r\nHost: h\r\n\r\n"));
          const t0 = performance.now();
          for (let i = 0; i < 50 && await event() === before; i++) await sleep(100);
          const elapsed = performance.now() - t0;
          assert.equal(await event() - before, 1, "send_timeout counted once");
          // Within 1.5 × send_timeout of the last progress, plus the sweep and the fill.
          assert.ok(elapsed < 4000, `cut after ${Math.round(elapsed)} ms`);
          assert.equal(await inFlight(), 0, "the request left the in-flight count");
          // The access line says why the response was cut.
          await g.waitForLog(/"path":"\/bytes\/52428800".*"error":"send_timeout"/);
        } finally {
          c.close();
        }
        await assertSettled(g);
      },
    );

    await t.step("a slow but steady reader is not cut by send_timeout", async () => {
      const before = await metric(
        g,
        /^expressgateway_protocol_events_total\{listener="slow",event="send_timeout"/,
      );
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        // 24 MB at about 6 MB/s (64 KiB every 10 ms): about 4 s, four times send_timeout, with the
        // socket buffers full all along, so every write of the gateway waits for the reader. The
        // kernel wakes a waiting writer once half of what it queued has drained: here every 0.35 s
        // (measured), well inside the 0.5 s the watch looks at. (A reader that drains the queue
        // slower than that in send_timeout would be cut, as nginx's send_timeout would cut it.)
        const size = 24 * 1024 * 1024;
        await c.write(
          new TextEncoder().encode(`GET /bytes/${size} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`),
        );
        const buf = new Uint8Array(64 * 1024);
        let got = 0;
        for (let i = 0; i < 2000; i++) {
          const n = await c.read(buf);
          if (n === null) break;
          got += n;
          await sleep(10);
        }
        assert.ok(got > size, `the whole response arrived: ${got} bytes`);
      } finally {
        c.close();
      }
      const after = await metric(
        g,
        /^expressgateway_protocol_events_total\{listener="slow",event="send_timeout"/,
      );
      assert.equal(after, before, "a reader that keeps reading was cut");
    });

    await t.step("an idle keep-alive connection is closed after idle_timeout", async () => {
      const before = await metric(g, /^expressgateway_protocol_events_total\{.*event="idle_timeout"/);
      const c = await RawClient.connect(port);
      try {
        await c.write("GET /first HTTP/1.1\r\nHost: h\r\n\r\n");
        assert.equal((await c.readResponse()).status, 200);
        const t0 = performance.now();
        assert.ok(await c.waitClosed(5000), "idle connection still open");
        const idle = performance.now() - t0;
        assert.ok(idle > 500 && idle < 4000, `closed after ${Math.round(idle)} ms idle`);
      } finally {
        c.close();
      }
      const after = await metric(g, /^expressgateway_protocol_events_total\{.*event="idle_timeout"/);
      assert.equal(after - before, 1);
    });

    await t.step("a connection that is busy is not cut by idle_timeout", async () => {
      const c = await RawClient.connect(port);
      try {
        for (let i = 0; i < 4; i++) {
          await c.write("GET /slow?ms=600 HTTP/1.1\r\nHost: h\r\n\r\n");
          assert.equal((await c.readResponse()).status, 200, `request ${i}`);
          await sleep(300);
        }
      } finally {
        c.close();
      }
    });

    await t.step("per-IP cap: the 4th connection from one address is closed at once", async () => {
      const cport = g.ports.capped;
      const before = await metric(g, /^expressgateway_guard_rejections_total\{.*reason="per_ip_cap"/);
      const held: RawClient[] = [];
      try {
        for (let i = 0; i < 3; i++) {
          const c = await RawClient.connect(cport);
          held.push(c);
          await c.write("GET /held HTTP/1.1\r\nHost: h\r\n\r\n");
          assert.equal((await c.readResponse()).status, 200);
        }
        const fourth = await RawClient.connect(cport);
        try {
          const t0 = performance.now();
          await fourth.write("GET /fourth HTTP/1.1\r\nHost: h\r\n\r\n").catch(() => {});
          const res = await fourth.readToEnd(3000);
          assert.ok(res.closed, "4th connection not closed");
          assert.equal(res.text, "", "4th connection was answered");
          assert.ok(performance.now() - t0 < 2000);
        } finally {
          fourth.close();
        }
        // the three admitted ones still work
        for (const c of held) {
          await c.write("GET /again HTTP/1.1\r\nHost: h\r\n\r\n");
          assert.equal((await c.readResponse()).status, 200);
        }
      } finally {
        for (const c of held) c.close();
      }
      const after = await metric(g, /^expressgateway_guard_rejections_total\{.*reason="per_ip_cap"/);
      assert.equal(after - before, 1);
      // once one closes, a new connection is admitted again (the count is released)
      let admitted = false;
      for (let i = 0; i < 20 && !admitted; i++) {
        const r = await rawOnce(cport, "GET /later HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        admitted = r.text.startsWith("HTTP/1.1 200");
        if (!admitted) await sleep(100);
      }
      assert.ok(admitted);
    });

    await t.step("listener cap: with max_connections = 2 the 3rd connection is closed at once", async () => {
      const fport = g.ports.full;
      const before = await metric(g, /^expressgateway_guard_rejections_total\{.*reason="listener_cap"/);
      const held: RawClient[] = [];
      try {
        for (let i = 0; i < 2; i++) {
          const c = await RawClient.connect(fport);
          held.push(c);
          await c.write("GET /held HTTP/1.1\r\nHost: h\r\n\r\n");
          assert.equal((await c.readResponse()).status, 200);
        }
        const third = await RawClient.connect(fport);
        try {
          await third.write("GET /third HTTP/1.1\r\nHost: h\r\n\r\n").catch(() => {});
          const res = await third.readToEnd(3000);
          assert.ok(res.closed, "3rd connection not closed");
          assert.equal(res.text, "", "3rd connection was answered");
        } finally {
          third.close();
        }
        // The cap is per listener: another listener is unaffected meanwhile.
        const other = await rawOnce(port, "GET /other HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        assert.match(other.text, /^HTTP\/1\.1 200 /);
      } finally {
        for (const c of held) c.close();
      }
      const after = await metric(g, /^expressgateway_guard_rejections_total\{.*reason="listener_cap"/);
      assert.equal(after - before, 1);
      // Closing one frees its slot (bounded wait: the close is seen asynchronously).
      let admitted = false;
      for (let i = 0; i < 20 && !admitted; i++) {
        const r = await rawOnce(fport, "GET /later HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        admitted = r.text.startsWith("HTTP/1.1 200");
        if (!admitted) await sleep(100);
      }
      assert.ok(admitted);
    });

    await t.step(
      "the books balance: every slow, capped or timed-out client has left nothing counted",
      async () => {
        await assertSettled(gw!);
      },
    );
  } finally {
    if (gw) assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
});

Deno.test("global in-flight cap: the second concurrent request gets 503 with Retry-After", async () => {
  const origin = await startOrigin("cap-origin");
  const gw = await startGateway(guardedConfig(origin, "max_in_flight = 1"));
  try {
    const port = gw.ports.slow;
    const before = await metric(gw, /^expressgateway_guard_rejections_total\{.*reason="in_flight_cap"/);
    const first = rawOnce(port, "GET /slow?ms=1500 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", {
      timeoutMs: 8000,
    });
    await sleep(400);
    const second = await rawOnce(port, "GET /slow?ms=10 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert.match(second.text, /^HTTP\/1\.1 503 /);
    assert.match(second.text, /\r\nretry-after: \d+\r\n/i);
    assert.match((await first).text, /^HTTP\/1\.1 200 /);
    // once the first finished, requests pass again
    const third = await rawOnce(port, "GET /slow?ms=10 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    assert.match(third.text, /^HTTP\/1\.1 200 /);
    const after = await metric(gw, /^expressgateway_guard_rejections_total\{.*reason="in_flight_cap"/);
    assert.equal(after - before, 1);
  } finally {
    assert.equal(await gw.stop(), 0);
    await origin.stop();
  }
});
