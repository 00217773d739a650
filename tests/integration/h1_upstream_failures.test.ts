/**
 * An HTTP/1.1 backend that fails while the request body is still streaming to it: the client must
 * hear the backend's failure (502, counted as an upstream error, reported to passive health), not
 * a 400 blaming its own body; and an early answer the backend sent before it closed still reaches
 * the client. Backends: raw Deno TCP servers that read the head and part of the body, then reset
 * (close with unread bytes) or answer first. Clients: curl with a 16 MiB upload from stdin.
 */

import assert from "node:assert/strict";
import { configHead, poolConfig, startGateway } from "../helpers/gateway.ts";
import { assertSettled } from "../helpers/settled.ts";
import { metricSum } from "../helpers/common.ts";
import { run } from "../helpers/run.ts";

/** A backend that reads `readBytes` of each request, optionally writes `answer`, then closes (a reset: bytes unread). */
function cuttingBackend(readBytes: number, answer?: string): { port: number; stop(): void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const c of l) {
      conns.add(c);
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        let got = 0;
        try {
          while (got < readBytes) {
            const n = await c.read(buf);
            if (n === null) break;
            got += n;
          }
          if (answer) await c.write(new TextEncoder().encode(answer));
        } catch { /* the gateway went away */ }
        try {
          c.close();
        } catch { /* closed */ }
        conns.delete(c);
      })();
    }
  })().catch(() => {});
  return {
    port: (l.addr as Deno.NetAddr).port,
    stop() {
      l.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

async function upload(port: number, host: string): Promise<string> {
  const r = await run("bash", [
    "-c",
    `head -c 16777216 /dev/zero | curl -s -o /dev/null -w '%{http_code}' -H 'Host: ${host}' ` +
    `-H 'Content-Type: application/octet-stream' --data-binary @- http://127.0.0.1:${port}/up`,
  ]);
  return r.stdout;
}

Deno.test("h1 backends failing mid-upload: 502 and an upstream error, or the early answer they sent", async () => {
  const reset = cuttingBackend(256 * 1024);
  const early = cuttingBackend(
    256 * 1024,
    "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 9\r\nconnection: close\r\n\r\ntoo large",
  );
  const gw = await startGateway(`${configHead({ runtime: "" })}
[[listeners]]
name = "web"
bind = "127.0.0.1:0"
protocol = "http"
  [[listeners.routes]]
  host = "reset.test"
  pool = "reset"
  [[listeners.routes]]
  host = "early.test"
  pool = "early"
${poolConfig("reset", [`127.0.0.1:${reset.port}`])}
${poolConfig("early", [`127.0.0.1:${early.port}`])}
`);
  try {
    assert.equal(
      await upload(gw.ports.web, "reset.test"),
      "502",
      "the backend's failure, not the client's body",
    );
    assert.equal(
      await metricSum(
        gw.adminPort,
        /^expressgateway_upstream_errors_total\{pool="reset",.*kind="protocol"\}/,
      ),
      1,
    );
    assert.equal(
      await metricSum(gw.adminPort, /^expressgateway_requests_total\{listener="web",.*status="4/),
      0,
      "no 4xx blamed on the client",
    );
    assert.equal(
      await upload(gw.ports.web, "early.test"),
      "413",
      "the answer the backend sent before closing",
    );
    const text = await (await fetch(gw.admin("/metrics"))).text();
    assert.match(
      text,
      /^expressgateway_requests_total\{listener="web",route="[^"]*",pool="early",status="4xx"\} 1$/m,
    );
    await assertSettled(gw);
  } finally {
    await gw.stop();
    reset.stop();
    early.stop();
  }
});
